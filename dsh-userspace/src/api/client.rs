//! The CLI's side of the socket: connect, send one request, read replies.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
};

use super::{Reply, Request, socket_path, state_dir::StateDirError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("dsh must run as root: the agent's socket is root-only")]
    NotRoot,
    #[error("the dsh agent is not running (no socket at {0}); start it with `dsh agent`")]
    NotRunning(String),
    #[error("cannot reach the dsh agent at {path}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    #[error("talking to the dsh agent")]
    Io(#[from] std::io::Error),
    #[error("the dsh agent sent something unreadable")]
    Protocol(#[from] serde_json::Error),
    #[error("the dsh agent closed the connection early")]
    Closed,
    /// The agent answered with an error (unknown container, ...).
    #[error("{0}")]
    Agent(String),
}

pub struct Connection {
    reader: BufReader<UnixStream>,
    line: String,
}

impl Connection {
    pub fn open(state_dir: &Path, req: &Request) -> Result<Self, ClientError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(ClientError::NotRoot);
        }
        let path = socket_path(state_dir);
        super::state_dir::check_socket(state_dir, &path)?;
        let shown = path.display().to_string();
        let mut stream = UnixStream::connect(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning(shown.clone())
            }
            _ => ClientError::Connect {
                path: shown.clone(),
                source,
            },
        })?;
        let mut bytes = serde_json::to_vec(req)?;
        bytes.push(b'\n');
        let written = stream.write_all(&bytes);
        let mut conn = Self {
            reader: BufReader::new(stream),
            line: String::new(),
        };
        if let Err(e) = written {
            // An agent that turns a client away (too many) says why, then
            // closes: its reason beats "broken pipe".
            return Err(match conn.recv() {
                Err(ClientError::Agent(why)) => ClientError::Agent(why),
                _ => ClientError::Io(e),
            });
        }
        Ok(conn)
    }

    /// The next reply; an agent-side error becomes `ClientError::Agent`.
    pub fn recv(&mut self) -> Result<Reply, ClientError> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(ClientError::Closed);
        }
        match serde_json::from_str(&self.line)? {
            Reply::Error(e) => Err(ClientError::Agent(e)),
            r => Ok(r),
        }
    }
}

/// One request, one reply (notes the agent sends before it are dropped).
pub fn call(state_dir: &Path, req: &Request) -> Result<Reply, ClientError> {
    call_noting(state_dir, req).map(|(_, reply)| reply)
}

/// One request: the notes (`Reply::Warning`) the agent sends first, and
/// its reply.
pub fn call_noting(state_dir: &Path, req: &Request) -> Result<(Vec<String>, Reply), ClientError> {
    let mut conn = Connection::open(state_dir, req)?;
    let mut notes = Vec::new();
    loop {
        match conn.recv()? {
            Reply::Warning(note) => notes.push(note),
            reply => return Ok((notes, reply)),
        }
    }
}
