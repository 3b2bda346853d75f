//! podman through its Docker-compatible API (`podman system service`):
//! the same client as Docker's on podman's socket. Its containers' cgroups
//! (`libpod-<id>`) are recognised by `cgroup::identity`.
use super::docker::DockerApi;

/// Where rootful podman's API service listens by default.
pub const DEFAULT_SOCKET: &str = "/run/podman/podman.sock";

pub fn client(socket: String) -> DockerApi {
    DockerApi::new("podman", socket)
}
