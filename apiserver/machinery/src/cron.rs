//! CronJob schedules as Kubernetes reads them: the five-field syntax and
//! descriptors, and the time zone they are read in.
//!
//! May import: `meta`.

use serde_json::Value;

use crate::meta::str_at;

/// Parses a CronJob's schedule as Kubernetes does: five fields (minute,
/// hour, day of month, month, day of week) or a descriptor like `@hourly`.
pub fn parse_schedule(schedule: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|e| e.to_string())
}

/// The time zone a CronJob's schedule is read in (UTC unless `timeZone`).
pub fn time_zone(cj: &Value) -> Result<jiff::tz::TimeZone, String> {
    match str_at(cj, "/spec/timeZone") {
        None => Ok(jiff::tz::TimeZone::UTC),
        Some(name) => {
            jiff::tz::TimeZone::get(name).map_err(|_| format!("unknown time zone {name}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_as_kubernetes_reads_them() {
        for ok in [
            "* * * * *",
            "*/15 2-4 * * 1-5",
            "0 0 1 jan *",
            "@hourly",
            "@daily",
        ] {
            assert!(parse_schedule(ok).is_ok(), "{ok}");
        }
        for bad in ["61 * * * *", "* * * *", "0 * * * * *", "every minute"] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }
}
