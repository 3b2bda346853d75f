//! `supervise` against a scripted runtime: answers, hangs, refusals.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use super::*;

/// A runtime whose behaviour the test changes while it runs.
#[derive(Clone, Default)]
struct Script(Arc<Mutex<Behaviour>>);

#[derive(Default)]
struct Behaviour {
    refuse: bool,
    hang: bool,
    containers: Vec<(String, RuntimeMeta)>,
    events: Option<mpsc::UnboundedReceiver<anyhow::Result<Change>>>,
}

struct Fake(Script);

fn meta(name: &str) -> RuntimeMeta {
    RuntimeMeta {
        runtime: "fake".into(),
        name: name.into(),
        ..Default::default()
    }
}

impl Fake {
    async fn gate(&self) -> anyhow::Result<()> {
        let (refuse, hang) = {
            let b = self.0.0.lock().unwrap();
            (b.refuse, b.hang)
        };
        if refuse {
            anyhow::bail!("connection refused");
        }
        if hang {
            futures_util::future::pending::<()>().await;
        }
        Ok(())
    }
}

impl Runtime for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn connect(&mut self) -> anyhow::Result<Connection> {
        self.gate().await?;
        let events = self.0.0.lock().unwrap().events.take();
        let changes = match events {
            Some(rx) => tokio_stream_of(rx),
            None => futures_util::stream::pending().boxed(),
        };
        Ok(Connection {
            version: "1.0".into(),
            changes,
        })
    }

    async fn list(&mut self) -> anyhow::Result<Vec<(String, RuntimeMeta)>> {
        self.gate().await?;
        Ok(self.0.0.lock().unwrap().containers.clone())
    }

    async fn inspect(&mut self, id: &str) -> anyhow::Result<Option<RuntimeMeta>> {
        self.gate().await?;
        let b = self.0.0.lock().unwrap();
        Ok(b.containers
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, m)| m.clone()))
    }

    async fn ping(&mut self) -> anyhow::Result<()> {
        self.gate().await
    }
}

fn tokio_stream_of(mut rx: mpsc::UnboundedReceiver<anyhow::Result<Change>>) -> Changes {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

fn pacing() -> Pacing {
    Pacing {
        call_timeout: Duration::from_millis(100),
        retry: Duration::from_millis(50),
        ping_every: Duration::from_millis(100),
    }
}

async fn next(rx: &mut mpsc::Receiver<RuntimeUpdate>) -> RuntimeUpdate {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an update within 5 s")
        .expect("supervise still running")
}

#[tokio::test(flavor = "current_thread")]
async fn lists_follows_answers_lookups_and_notices_a_hang() {
    let script = Script::default();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    {
        let mut b = script.0.lock().unwrap();
        b.containers = vec![("a".into(), meta("web")), ("b".into(), meta("db"))];
        b.events = Some(ev_rx);
    }
    let (tx, mut rx) = mpsc::channel(16);
    let (look_tx, look_rx) = mpsc::channel(16);
    let task = tokio::spawn(supervise(Fake(script.clone()), tx, look_rx, pacing()));

    assert!(matches!(
        next(&mut rx).await,
        RuntimeUpdate::Connected {
            runtime: "fake",
            ..
        }
    ));
    for want in ["web", "db"] {
        match next(&mut rx).await {
            RuntimeUpdate::Container { meta: Some(m), .. } => assert_eq!(m.name, want),
            other => panic!("{other:?}"),
        }
    }
    ev_tx.send(Ok(Change::Gone("a".into()))).unwrap();
    match next(&mut rx).await {
        RuntimeUpdate::Container { id, meta: None } => assert_eq!(id, "a"),
        other => panic!("{other:?}"),
    }
    // A lookup for an unknown id says nothing; a known one answers.
    look_tx.send("zzz".into()).await.unwrap();
    look_tx.send("b".into()).await.unwrap();
    match next(&mut rx).await {
        RuntimeUpdate::Container { id, meta: Some(_) } => assert_eq!(id, "b"),
        other => panic!("{other:?}"),
    }
    // Stopped (SIGSTOP): the next ping times out.
    script.0.lock().unwrap().hang = true;
    match next(&mut rx).await {
        RuntimeUpdate::Disconnected { error, .. } => {
            assert!(error.contains("did not answer ping"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    // Refusing: reported as such on each retry (once in the log).
    {
        let mut b = script.0.lock().unwrap();
        (b.hang, b.refuse) = (false, true);
    }
    match next(&mut rx).await {
        RuntimeUpdate::Disconnected { error, .. } => assert_eq!(error, "connection refused"),
        other => panic!("{other:?}"),
    }
    // Back: connected again, listed again.
    script.0.lock().unwrap().refuse = false;
    loop {
        if let RuntimeUpdate::Connected { .. } = next(&mut rx).await {
            break;
        }
    }
    assert!(matches!(
        next(&mut rx).await,
        RuntimeUpdate::Container { .. }
    ));
    drop(rx);
    drop(look_tx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("supervise ends once the agent has gone")
        .unwrap();
}
