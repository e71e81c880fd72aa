//! How a host or a worker reaches the other side: endpoints, TLS files,
//! credentials, the session lease, and the rule that anything but loopback
//! or a unix socket needs TLS unless explicitly allowed.

use std::time::Duration;

use crate::error::{Error, Result};

/// Mutual TLS: a CA that signs both sides, and this side's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file of the certificate authority both sides trust.
    pub ca_certificate: String,
    /// PEM file of this side's certificate (signed by that CA).
    pub certificate: String,
    /// PEM file of this side's private key.
    pub private_key: String,
}

/// Connection settings of a host or a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Endpoints to listen on, e.g. `tcp/127.0.0.1:7447`, `tls/0.0.0.0:7447`,
    /// `unixsock-stream//tmp/liminal.sock`.
    pub listen: Vec<String>,
    /// Endpoints to connect to.
    pub connect: Vec<String>,
    /// Mutual TLS (required for `tls/` endpoints): a side without a
    /// certificate signed by the CA never connects.
    pub tls: Option<TlsFiles>,
    /// The user and password this side presents.
    pub credentials: Option<(String, String)>,
    /// A file of accepted `user:password` lines: a side that cannot present
    /// one of them never connects.
    pub users_file: Option<String>,
    /// On a host: the longest session lease a worker may advertise (it is
    /// refused otherwise; a worker silent for 7/8 of its lease is declared gone).
    /// On a worker: its session lease (it sends a beat four times per
    /// lease). Default 1 s, at least 50 ms.
    pub lease: Duration,
    /// Allow listening on or connecting to anything but loopback or a unix
    /// socket without TLS. Off by default: in the clear, anyone on the
    /// network can read deliveries and pose as a worker.
    pub allow_insecure: bool,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            connect: Vec::new(),
            tls: None,
            credentials: None,
            users_file: None,
            lease: Duration::from_secs(1),
            allow_insecure: false,
        }
    }
}

/// Whether an endpoint stays on this machine or is protected by TLS.
fn endpoint_is_private(endpoint: &str, tls: bool) -> bool {
    let endpoint = endpoint.split('#').next().unwrap_or(endpoint);
    let Some((proto, address)) = endpoint.split_once('/') else {
        return false;
    };
    match proto {
        "unixsock-stream" => true,
        "tls" => tls,
        "tcp" => {
            let host = address
                .rsplit_once(':')
                .map_or(address, |(host, _port)| host)
                .trim_start_matches('[')
                .trim_end_matches(']');
            host == "localhost"
                || host == "::1"
                || host
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

/// An IP endpoint (`tcp/`, `tls/`, `udp/`, `quic/`) must end in a port
/// that fits 16 bits (Zenoh only notices when the session opens).
fn check_port(endpoint: &str) -> Result<()> {
    let bare = endpoint.split(['?', '#']).next().unwrap_or(endpoint);
    let Some((proto, address)) = bare.split_once('/') else {
        return Err(Error::InvalidArgument(format!(
            "remote endpoint {endpoint}: expected <protocol>/<address>"
        )));
    };
    if matches!(proto, "tcp" | "tls" | "udp" | "quic") {
        let port = address.rsplit_once(':').map(|(_host, port)| port);
        if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
            return Err(Error::InvalidArgument(format!(
                "remote endpoint {endpoint}: needs <host>:<port> with a port from 0 to 65535"
            )));
        }
    }
    Ok(())
}

impl RemoteOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.listen.is_empty() && self.connect.is_empty() {
            return Err(Error::InvalidArgument(
                "remote: give at least one endpoint to listen on or connect to".into(),
            ));
        }
        if self.lease < Duration::from_millis(50) {
            return Err(Error::InvalidArgument(
                "remote lease: at least 50 ms".into(),
            ));
        }
        let tls = self.tls.is_some();
        for endpoint in self.listen.iter().chain(&self.connect) {
            check_port(endpoint)?;
            if endpoint.starts_with("tls/") && !tls {
                return Err(Error::InvalidArgument(format!(
                    "remote endpoint {endpoint}: tls/ needs TLS files"
                )));
            }
            if !self.allow_insecure && !endpoint_is_private(endpoint, tls) {
                return Err(Error::InvalidArgument(format!(
                    "remote endpoint {endpoint}: not loopback, not a unix socket, and not TLS; \
                     use tls/ endpoints with TLS files, or allow insecure endpoints explicitly"
                )));
            }
        }
        Ok(())
    }

    /// The Zenoh configuration these options make (peer mode, no
    /// scouting: only the endpoints given; the lease; a lost connection
    /// tried again every quarter lease; TLS; credentials),
    /// for a program that talks to the same peers with `zenoh` directly.
    /// Errors: `InvalidArgument` (the options are refused).
    pub fn zenoh_config(&self) -> Result<zenoh::Config> {
        self.validate()?;
        let mut config = zenoh::Config::default();
        let text = |value: &str| serde_json::Value::from(value).to_string();
        let list = |values: &[String]| serde_json::Value::from(values.to_vec()).to_string();
        let mut set = |key: &str, value: String| {
            config
                .insert_json5(key, &value)
                .map_err(|e| Error::InvalidArgument(format!("remote option {key}: {e}")))
        };
        set("mode", text("peer"))?;
        set("scouting/multicast/enabled", "false".into())?;
        set("scouting/gossip/enabled", "false".into())?;
        set("listen/endpoints", list(&self.listen))?;
        set("connect/endpoints", list(&self.connect))?;
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        set("transport/link/tx/lease", lease_ms.to_string())?;
        set("transport/link/tx/keep_alive", "4".into())?;
        // A lost connection (a host restarting on the same endpoint) is
        // tried again every quarter lease, not Zenoh's 1 s doubling to 4 s:
        // a restarted host sees its workers back within about a lease.
        let retry_ms = (lease_ms / 4).max(10);
        set(
            "connect/retry",
            format!(
                "{{\"period_init_ms\": {retry_ms}, \"period_max_ms\": {retry_ms}, \
                 \"period_increase_factor\": 1.0}}"
            ),
        )?;
        if let Some(tls) = &self.tls {
            set(
                "transport/link/tls/root_ca_certificate",
                text(&tls.ca_certificate),
            )?;
            set(
                "transport/link/tls/listen_certificate",
                text(&tls.certificate),
            )?;
            set(
                "transport/link/tls/listen_private_key",
                text(&tls.private_key),
            )?;
            set(
                "transport/link/tls/connect_certificate",
                text(&tls.certificate),
            )?;
            set(
                "transport/link/tls/connect_private_key",
                text(&tls.private_key),
            )?;
            set("transport/link/tls/enable_mtls", "true".into())?;
        }
        if let Some((user, password)) = &self.credentials {
            set("transport/auth/usrpwd/user", text(user))?;
            set("transport/auth/usrpwd/password", text(password))?;
        }
        if let Some(file) = &self.users_file {
            set("transport/auth/usrpwd/dictionary_file", text(file))?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_or_tls_endpoints_without_the_opt_in() {
        assert!(endpoint_is_private("tcp/127.0.0.1:7447", false));
        assert!(endpoint_is_private("tcp/localhost:7447", false));
        assert!(endpoint_is_private("tcp/[::1]:7447", false));
        assert!(endpoint_is_private("unixsock-stream//tmp/x.sock", false));
        assert!(!endpoint_is_private("tcp/0.0.0.0:7447", false));
        assert!(!endpoint_is_private("tcp/10.1.2.3:7447", false));
        assert!(!endpoint_is_private("tls/10.1.2.3:7447", false));
        assert!(endpoint_is_private("tls/10.1.2.3:7447", true));
        let open = RemoteOptions {
            listen: vec!["tcp/0.0.0.0:7447".into()],
            ..RemoteOptions::default()
        };
        assert!(matches!(open.validate(), Err(Error::InvalidArgument(_))));
        let opted_in = RemoteOptions {
            allow_insecure: true,
            ..open
        };
        assert!(opted_in.validate().is_ok());
        assert!(opted_in.zenoh_config().is_ok());
        // A worker's session (connect only) listens nowhere, and retries
        // a lost connection every quarter lease.
        let worker = RemoteOptions {
            connect: vec!["tcp/127.0.0.1:7447".into()],
            lease: Duration::from_millis(400),
            ..RemoteOptions::default()
        }
        .zenoh_config()
        .unwrap();
        let listen = worker.get_json("listen/endpoints").unwrap();
        assert!(!listen.contains('/'), "listens on {listen}");
        let retry = worker.get_json("connect/retry").unwrap();
        assert!(retry.contains("100"), "{retry}");
        assert!(check_port("tcp/127.0.0.1:7447").is_ok());
        assert!(check_port("unixsock-stream//tmp/x.sock").is_ok());
        assert!(check_port("tcp/127.0.0.1:99999").is_err());
        assert!(check_port("tcp/127.0.0.1").is_err());
    }
}
