//! Protocols and ports as the policy writes them: `tcp/443`, `udp/53`, `tcp/8000-8099`,
//! `icmp`.

use std::fmt;

/// The transport protocols a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP for IPv4 and ICMPv6 for IPv6; ports do not apply.
    Icmp,
}

impl Proto {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tcp" => Some(Self::Tcp),
            "udp" => Some(Self::Udp),
            "icmp" => Some(Self::Icmp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol and an inclusive port range (`0..=0` for ICMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Service {
    pub proto: Proto,
    pub first_port: u16,
    pub last_port: u16,
}

impl Service {
    /// Parses `tcp/443`, `udp/53`, `tcp/8000-8099` or `icmp`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "icmp" {
            return Ok(Self {
                proto: Proto::Icmp,
                first_port: 0,
                last_port: 0,
            });
        }
        let (proto, ports) = s.split_once('/').ok_or_else(|| {
            format!("{s:?} is not a service: write tcp/PORT, udp/PORT, tcp/FIRST-LAST or icmp")
        })?;
        let proto = match Proto::parse(proto) {
            Some(Proto::Icmp) => return Err(format!("{s:?}: icmp takes no port; write icmp")),
            Some(p) => p,
            None => {
                return Err(format!(
                    "{s:?}: unknown protocol {proto:?} (use tcp, udp or icmp)"
                ));
            }
        };
        let port = |p: &str| -> Result<u16, String> {
            match p.parse::<u16>() {
                Ok(0) => Err(format!("{s:?}: port 0 is not a port")),
                Ok(n) => Ok(n),
                Err(_) => Err(format!("{s:?}: {p:?} is not a port (1 to 65535)")),
            }
        };
        let (first, last) = match ports.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(ports)?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!(
                "{s:?}: the port range is inverted ({first} > {last})"
            ));
        }
        Ok(Self {
            proto,
            first_port: first,
            last_port: last,
        })
    }

    pub fn matches(&self, proto: Proto, port: u16) -> bool {
        self.proto == proto
            && (proto == Proto::Icmp || (self.first_port..=self.last_port).contains(&port))
    }

    /// Whether everything `other` allows, `self` allows.
    pub fn covers(&self, other: &Service) -> bool {
        self.proto == other.proto
            && self.first_port <= other.first_port
            && other.last_port <= self.last_port
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            Proto::Icmp => f.write_str("icmp"),
            p if self.first_port == self.last_port => write!(f, "{p}/{}", self.first_port),
            p => write!(f, "{p}/{}-{}", self.first_port, self.last_port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_services() {
        for s in ["tcp/443", "udp/53", "tcp/8000-8099", "icmp", "tcp/1-65535"] {
            assert_eq!(Service::parse(s).map(|x| x.to_string()).as_deref(), Ok(s));
        }
        let bad: &[(&str, &str)] = &[
            ("443", "is not a service"),
            ("sctp/1", "unknown protocol"),
            ("tcp/0", "port 0"),
            ("tcp/70000", "is not a port"),
            ("tcp/90-80", "inverted"),
            ("icmp/8", "icmp takes no port"),
            ("tcp/", "is not a port"),
        ];
        for (s, want) in bad {
            let err = Service::parse(s).expect_err(s);
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn matching() {
        let range = Service::parse("tcp/8000-8099").expect("svc");
        assert!(range.matches(Proto::Tcp, 8000) && range.matches(Proto::Tcp, 8099));
        assert!(!range.matches(Proto::Tcp, 8100) && !range.matches(Proto::Udp, 8000));
        assert!(Service::parse("icmp").expect("svc").matches(Proto::Icmp, 0));
        assert!(range.covers(&Service::parse("tcp/8010").expect("svc")));
    }
}
