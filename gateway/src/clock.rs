//! Time and randomness as parameters: the shell passes the real ones, tests pass their own.

use std::sync::Mutex;

use time::OffsetDateTime;

/// Where the gateway's logic gets the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock, truncated to whole seconds (the registry's resolution).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(0).unwrap_or(now)
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: time::Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.0
            .lock()
            .map(|t| *t)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Where the gateway's logic gets random bytes.
pub trait Entropy: Send + Sync + std::fmt::Debug {
    /// Fills `buf`; failing to get randomness is not recoverable, so it is an error.
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError>;
}

/// The operating system's random generator failed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct EntropyError;

/// The operating system's CSPRNG (through ring).
#[derive(Debug)]
pub struct SystemEntropy(ring::rand::SystemRandom);

impl SystemEntropy {
    pub fn new() -> Self {
        Self(ring::rand::SystemRandom::new())
    }
}

impl Default for SystemEntropy {
    fn default() -> Self {
        Self::new()
    }
}

impl Entropy for SystemEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        ring::rand::SecureRandom::fill(&self.0, buf).map_err(|_| EntropyError)
    }
}

/// Fills `N` bytes from any entropy source (usable through `dyn Entropy`).
pub fn random<const N: usize>(e: &dyn Entropy) -> Result<[u8; N], EntropyError> {
    let mut out = [0u8; N];
    e.fill(&mut out)?;
    Ok(out)
}
