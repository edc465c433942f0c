//! The `timestamp` column type: microseconds since the Unix epoch, UTC.

/// A point in time as microseconds since the Unix epoch (1970-01-01T00:00:00Z),
/// the value type of `timestamp` columns. Negative values are before 1970.
///
/// ```
/// use lockstep_sdk::Timestamp;
///
/// let t = Timestamp::from_micros(90 * Timestamp::MICROS_PER_MINUTE);
/// assert_eq!(t.as_micros(), 5_400_000_000);
/// assert_eq!(t.as_micros().div_euclid(Timestamp::MICROS_PER_HOUR), 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Self = Self(0);
    /// Microseconds in a second.
    pub const MICROS_PER_SECOND: i64 = 1_000_000;
    /// Microseconds in a minute.
    pub const MICROS_PER_MINUTE: i64 = 60 * Self::MICROS_PER_SECOND;
    /// Microseconds in an hour.
    pub const MICROS_PER_HOUR: i64 = 60 * Self::MICROS_PER_MINUTE;
    /// Microseconds in a day (UTC has no leap seconds in Unix time).
    pub const MICROS_PER_DAY: i64 = 24 * Self::MICROS_PER_HOUR;

    /// The timestamp `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }
}

impl From<Timestamp> for i64 {
    fn from(timestamp: Timestamp) -> Self {
        timestamp.as_micros()
    }
}

impl From<i64> for Timestamp {
    fn from(micros: i64) -> Self {
        Self::from_micros(micros)
    }
}
