//! Where the brokers are and how to reach them.
//!
//! A [`Connection`] is the bootstrap list plus librdkafka pass-through options
//! (`-X key=value` on the command line: `security.protocol`, `sasl.mechanism`,
//! `sasl.username`, `ssl.ca.location`, ...). Pass-through options are applied
//! last, so they override every default this crate sets.
//!
//! An [`Endpoint`] is a connection that may own the [`EmbeddedBroker`] it
//! points at: every command and the app start one when no `--brokers` is given.

use rdkafka::ClientConfig;

use super::{BusError, EmbeddedBroker};

/// Bootstrap servers plus librdkafka options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    brokers: String,
    options: Vec<(String, String)>,
    embedded: bool,
}

impl Connection {
    /// A connection to `brokers` (`host:port[,host:port...]`) with no extra options.
    pub fn new(brokers: impl Into<String>) -> Connection {
        Connection {
            brokers: brokers.into(),
            options: Vec::new(),
            embedded: false,
        }
    }

    /// A connection to an embedded broker: clients tune themselves for it
    /// (the mock broker does not cut a long poll short when data arrives, so
    /// subscribers poll it with a short `fetch.wait.max.ms`).
    pub fn to_embedded(broker: &EmbeddedBroker) -> Connection {
        Connection {
            brokers: broker.bootstrap().to_owned(),
            options: Vec::new(),
            embedded: true,
        }
    }

    /// Adds librdkafka options; later ones win over earlier ones and over defaults.
    pub fn with_options(mut self, options: impl IntoIterator<Item = (String, String)>) -> Self {
        self.options.extend(options);
        self
    }

    /// Adds one librdkafka option.
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// The bootstrap servers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The pass-through options, in the order given.
    pub fn options(&self) -> &[(String, String)] {
        &self.options
    }

    /// Whether this points at an [`EmbeddedBroker`].
    pub fn is_embedded(&self) -> bool {
        self.embedded
    }

    /// A librdkafka configuration: [`CLIENT_DEFAULTS`], `defaults`, then
    /// `bootstrap.servers`, then the pass-through options (which therefore
    /// override the defaults).
    pub fn client_config(&self, defaults: &[(&str, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (k, v) in CLIENT_DEFAULTS {
            config.set(*k, *v);
        }
        for (k, v) in defaults {
            config.set(*k, v.as_str());
        }
        config.set("bootstrap.servers", self.brokers.as_str());
        for (k, v) in &self.options {
            config.set(k.as_str(), v.as_str());
        }
        config
    }

    /// The value an option will have, if set by pass-through.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Options every client of the project starts from.
///
/// `reconnect.backoff.max.ms`: librdkafka doubles the wait before
/// reconnecting to a broker after each failed attempt, up to 10 s by default;
/// after an outage of a few seconds a client could then sit out up to 10 s
/// more with the broker already back, and a live view (or a recorder's
/// flush) stalled that long. One second keeps the retries cheap and the
/// return prompt.
pub const CLIENT_DEFAULTS: &[(&str, &str)] = &[("reconnect.backoff.max.ms", "1000")];

/// Parses `key=value` (the `-X` argument). The value may itself contain `=`.
pub fn parse_option(s: &str) -> Result<(String, String), BusError> {
    let bad = |reason: &str| BusError::BadOption {
        option: s.to_owned(),
        reason: reason.to_owned(),
    };
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| bad("expected key=value, e.g. security.protocol=SASL_SSL"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(bad("the key is empty"));
    }
    if key == "bootstrap.servers" {
        return Err(bad("use --brokers to set the bootstrap servers"));
    }
    // librdkafka reports a missing certificate or key file as an OpenSSL
    // error code ("error:80000002:system library::..."); say it plainly
    if FILE_OPTIONS.contains(&key) && !(key == "ssl.ca.location" && value == "probe") {
        if value.is_empty() {
            return Err(bad("the file name is empty"));
        }
        if let Err(e) = std::fs::metadata(value) {
            return Err(bad(&format!("cannot read {value}: {e}")));
        }
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// librdkafka options whose value is a file (or, for the CA, a directory).
const FILE_OPTIONS: &[&str] = &[
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.keystore.location",
    "ssl.crl.location",
    "sasl.kerberos.keytab",
];

/// A connection that may own the embedded broker it points at.
///
/// Keep the endpoint alive for as long as clients use it: dropping it stops
/// an embedded broker (clients then retry until they are dropped).
#[derive(Debug)]
pub struct Endpoint {
    connection: Connection,
    embedded: Option<EmbeddedBroker>,
}

impl Endpoint {
    /// Connects to `brokers` if given; otherwise starts an [`EmbeddedBroker`]
    /// on `embedded_port` (`None`: any free port) and logs that it did so.
    pub fn open(
        brokers: Option<&str>,
        options: Vec<(String, String)>,
        embedded_port: Option<u16>,
    ) -> Result<Endpoint, BusError> {
        match brokers {
            Some(b) if !b.trim().is_empty() => Ok(Endpoint {
                connection: Connection::new(b.trim()).with_options(options),
                embedded: None,
            }),
            _ => {
                let broker = EmbeddedBroker::start(embedded_port)?;
                log::info!(
                    "no --brokers given: using the embedded broker at {}",
                    broker.bootstrap()
                );
                Ok(Endpoint {
                    connection: Connection::to_embedded(&broker).with_options(options),
                    embedded: Some(broker),
                })
            }
        }
    }

    /// Wraps an existing connection.
    pub fn external(connection: Connection) -> Endpoint {
        Endpoint {
            connection,
            embedded: None,
        }
    }

    /// How clients reach the brokers.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The embedded broker, if this endpoint started one.
    pub fn embedded(&self) -> Option<&EmbeddedBroker> {
        self.embedded.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_override_defaults() {
        assert_eq!(
            parse_option("sasl.password=a=b").unwrap(),
            ("sasl.password".to_owned(), "a=b".to_owned())
        );
        assert!(parse_option("novalue").is_err());
        assert!(parse_option("=x").is_err());
        let err = parse_option("bootstrap.servers=x:1").unwrap_err();
        assert!(err.to_string().contains("--brokers"), "{err}");
        let err = parse_option("ssl.ca.location=/no/such/ca.pem").unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad librdkafka option `ssl.ca.location=/no/such/ca.pem`: \
             cannot read /no/such/ca.pem: No such file or directory (os error 2)"
        );
        assert!(parse_option("ssl.ca.location=probe").is_ok());
        assert!(parse_option("ssl.ca.location=/").is_ok());
        assert!(parse_option("ssl.key.location=").is_err());

        let c = Connection::new("h:1").with_option("linger.ms", "0");
        let cfg = c.client_config(&[("linger.ms", "5".to_owned()), ("acks", "all".to_owned())]);
        assert_eq!(cfg.get("linger.ms"), Some("0"));
        assert_eq!(cfg.get("acks"), Some("all"));
        assert_eq!(cfg.get("bootstrap.servers"), Some("h:1"));
        assert_eq!(c.option("linger.ms"), Some("0"));
    }
}
