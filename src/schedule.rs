//! Cron expressions and their fire times in an IANA timezone, DST included.
//!
//! Pure: every function takes the instant it reasons about. The timer that
//! wakes the daemon (tokio-cron-scheduler) never decides *what* fires; it only
//! says "look now", because it pins a timezone to the UTC offset it had when the
//! job was created and so drifts by an hour after each DST change.
//!
//! Semantics, chosen so an SRE can predict every run:
//! - fields match like Vixie cron: when both day-of-month and day-of-week are
//!   restricted, a day matches if either does;
//! - a local time that does not exist (spring forward) fires once, at the first
//!   instant after the gap: 02:30 in New York on the spring-forward day runs at
//!   03:00 EDT; several such times in one gap still fire once;
//! - a local time that occurs twice (fall back) fires once, at its first
//!   occurrence, when the hour field names hours (`30 1 * * *`); when the
//!   hour field is `*` (`*/30 * * * *`, `0 * * * *`) it fires in both
//!   passes, as cronie, Vixie cron and healthchecks.io's cronsim do, so an
//!   interval job never pauses for the repeated hour.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// A parse error with the byte offset in the expression where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    pub message: String,
    pub offset: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Bits(u64);

impl Bits {
    fn has(self, v: u32) -> bool {
        v < 64 && self.0 & (1u64 << v) != 0
    }
    /// The smallest member >= v.
    fn next_from(self, v: u32) -> Option<u32> {
        if v >= 64 {
            return None;
        }
        let masked = self.0 & (!0u64 << v);
        (masked != 0).then(|| masked.trailing_zeros())
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    seconds: Bits,
    minutes: Bits,
    hours: Bits,
    days: Bits,
    months: Bits,
    weekdays: Bits,
    days_restricted: bool,
    weekdays_restricted: bool,
    /// The hour field starts with `*`: a repeated hour runs in both passes.
    hours_wild: bool,
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpr({:?})", self.source)
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
// 7 is accepted as Sunday, as in Vixie cron.
const WEEKDAY: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(source: &str) -> Result<Self, CronError> {
        let expanded = match source.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => {
                return Err(CronError {
                    message: format!(
                        "unknown macro `{s}` (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)"
                    ),
                    offset: source.find('@').unwrap_or(0),
                });
            }
            _ => source,
        };
        let from_macro = expanded.as_ptr() != source.as_ptr();
        // Fields with their byte offsets in the source, for error columns.
        let mut fields: Vec<(usize, &str)> = Vec::new();
        let mut start = None;
        for (i, c) in expanded.char_indices() {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    fields.push((s, &expanded[s..i]));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            fields.push((s, &expanded[s..]));
        }
        let at = |offset: usize| if from_macro { 0 } else { offset };
        let (sec, rest): (Option<(usize, &str)>, &[(usize, &str)]) = match fields.len() {
            5 => (None, &fields[..]),
            6 => (Some(fields[0]), &fields[1..]),
            n => {
                return Err(CronError {
                    message: format!(
                        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), found {n}"
                    ),
                    offset: 0,
                });
            }
        };
        let parse = |(off, text): (usize, &str), spec: &FieldSpec| {
            parse_field(text, spec).map_err(|(msg, rel)| CronError {
                message: format!("{} field `{text}`: {msg}", spec.name),
                offset: at(off + rel),
            })
        };
        let seconds = match sec {
            Some(f) => parse(f, &SECOND)?.0,
            None => Bits(1),
        };
        let (minutes, _) = parse(rest[0], &MINUTE)?;
        let (hours, hours_restricted) = parse(rest[1], &HOUR)?;
        let (days, days_restricted) = parse(rest[2], &DAY)?;
        let (months, _) = parse(rest[3], &MONTH)?;
        let (mut weekdays, weekdays_restricted) = parse(rest[4], &WEEKDAY)?;
        if weekdays.has(7) {
            weekdays = Bits((weekdays.0 | 1) & !(1 << 7));
        }
        let expr = CronExpr {
            source: source.trim().to_string(),
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
            hours_wild: !hours_restricted,
        };
        if !expr.can_ever_fire() {
            return Err(CronError {
                message: "this schedule never fires (no month has that day)".to_string(),
                offset: at(rest[2].0),
            });
        }
        Ok(expr)
    }
}

/// Parses one field into its set of values and whether it restricts anything
/// (a leading `*` or `?` does not, which matters for the day-of-month /
/// day-of-week rule).
fn parse_field(text: &str, spec: &FieldSpec) -> Result<(Bits, bool), (String, usize)> {
    let mut bits = 0u64;
    let restricted = !(text.starts_with('*') || text.starts_with('?'));
    let mut offset = 0;
    for item in text.split(',') {
        let item_off = offset;
        offset += item.len() + 1;
        if item.is_empty() {
            return Err(("empty list item".into(), item_off));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| {
                    (
                        format!("step `{s}` is not a number"),
                        item_off + r.len() + 1,
                    )
                })?;
                if step == 0 {
                    return Err(("step must be at least 1".into(), item_off + r.len() + 1));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (spec.min, if spec.max == 7 { 6 } else { spec.max })
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = value(a, spec).map_err(|m| (m, item_off))?;
            let hi = value(b, spec).map_err(|m| (m, item_off + a.len() + 1))?;
            if lo > hi {
                return Err((format!("range {a}-{b} runs backwards"), item_off));
            }
            (lo, hi)
        } else {
            let v = value(range, spec).map_err(|m| (m, item_off))?;
            // `5/15` means from 5 to the end of the field, every 15.
            (v, if step.is_some() { spec.max } else { v })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((Bits(bits), restricted))
}

fn value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(i as u32 + if spec.min == 1 { 1 } else { 0 });
    }
    let v: u32 = text.parse().map_err(|_| {
        if spec.names.is_empty() {
            format!("`{text}` is not a number")
        } else {
            format!(
                "`{text}` is not a number or a name ({})",
                spec.names.join(", ")
            )
        }
    })?;
    if v < spec.min || v > spec.max {
        return Err(format!("{v} is out of range {}-{}", spec.min, spec.max));
    }
    Ok(v)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(31)
}

/// How a fire relates to the wall clock it was scheduled by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shift {
    /// The local time exists once: the ordinary case.
    None,
    /// The local time fell in a spring-forward gap; the fire moved to the
    /// first valid instant after it.
    Gap,
    /// The local time occurs twice at fall-back; this is the only fire, at the
    /// first occurrence.
    Repeated,
}

/// One fire of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fire {
    /// When it runs.
    pub at: DateTime<Utc>,
    /// The wall-clock time the expression named, which differs from `at`'s
    /// local time when `shift` is `Gap`.
    pub nominal: NaiveDateTime,
    pub shift: Shift,
}

/// The members of a field, in order.
fn members(b: Bits, min: u32, max: u32) -> Vec<u32> {
    (min..=max).filter(|v| b.has(*v)).collect()
}

/// A field's members as a stride from its first value that covers the
/// field (`*/5`, `0/15`): the stride, if they are one.
fn stride(values: &[u32], min: u32, max: u32) -> Option<u32> {
    let (first, second) = (*values.first()?, *values.get(1)?);
    let step = second - first;
    let whole = first == min && values.windows(2).all(|w| w[1] - w[0] == step);
    (whole && max - values[values.len() - 1] < step).then_some(step)
}

/// Values as words: `1, 2 and 3`, runs of three or more as `9–17`.
fn list(values: &[u32], name: impl Fn(u32) -> String) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}–{}", name(values[i]), name(values[j])));
        } else {
            parts.extend(values[i..=j].iter().map(|v| name(*v)));
        }
        i = j + 1;
    }
    match parts.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => parts.join(""),
    }
}

fn plural(n: u32, unit: &str) -> String {
    if n == 1 {
        format!("every {unit}")
    } else {
        format!("every {n} {unit}s")
    }
}

impl CronExpr {
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The schedule in words, read from its fields (not its text), so it
    /// says exactly when it fires: `at 09:00 every day`, `every 5 minutes`,
    /// `at 02:30 on Mon–Fri`. Times are the job's zone's wall clock.
    pub fn describe(&self) -> String {
        let secs = members(self.seconds, 0, 59);
        let mins = members(self.minutes, 0, 59);
        let hours = members(self.hours, 0, 23);
        let all = |v: &[u32], n: usize| v.len() == n;
        let on_the_minute = secs == [0];
        let clock_times = on_the_minute && hours.len() * mins.len() <= 4 && !all(&hours, 24);
        let time = if clock_times {
            let times: Vec<String> = hours
                .iter()
                .flat_map(|h| mins.iter().map(move |m| format!("{h:02}:{m:02}")))
                .collect();
            let last = times.len() - 1;
            format!(
                "at {}",
                match times.split_last() {
                    Some((l, rest)) if last > 0 => format!("{} and {l}", rest.join(", ")),
                    _ => times.join(""),
                }
            )
        } else {
            let second = if on_the_minute {
                None
            } else if all(&secs, 60) {
                Some("every second".to_string())
            } else if let Some(step) = stride(&secs, 0, 59) {
                Some(plural(step, "second"))
            } else {
                Some(format!(
                    "at second {} of the minute",
                    list(&secs, |v| v.to_string())
                ))
            };
            let minute = if all(&mins, 60) {
                (second.is_none()).then(|| "every minute".to_string())
            } else if let Some(step) = stride(&mins, 0, 59) {
                Some(plural(step, "minute"))
            } else {
                Some(format!(
                    "at minute {} of the hour",
                    list(&mins, |v| v.to_string())
                ))
            };
            let hour = if all(&hours, 24) {
                None
            } else if let Some(step) = stride(&hours, 0, 23) {
                Some(format!("every {step} hours"))
            } else {
                Some(format!("in hours {}", list(&hours, |v| format!("{v:02}"))))
            };
            [second, minute, hour]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ")
        };
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let weekdays = || {
            // Monday first, as people read a week; Sunday last.
            let mut w = members(self.weekdays, 1, 6);
            if self.weekdays.has(0) {
                w.push(7);
            }
            format!("on {}", list(&w, |v| DAYS[(v % 7) as usize].to_string()))
        };
        let days = || {
            let d = members(self.days, 1, 31);
            format!("on day {} of the month", list(&d, |v| v.to_string()))
        };
        let day = match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => Some(format!("{} or {}", days(), weekdays())),
            (true, false) => Some(days()),
            (false, true) => Some(weekdays()),
            (false, false) => clock_times.then(|| "every day".to_string()),
        };
        let months = members(self.months, 1, 12);
        let month = (months.len() < 12).then(|| {
            format!(
                "in {}",
                list(&months, |v| MONTHS[(v - 1) as usize].to_string())
            )
        });
        [Some(time), day, month]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.days.has(d.day());
        let dow = self.weekdays.has(d.weekday().num_days_from_sunday());
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    fn can_ever_fire(&self) -> bool {
        if self.weekdays_restricted && !self.days_restricted {
            return self.weekdays.0 != 0;
        }
        if self.weekdays_restricted && self.weekdays.0 != 0 {
            return true;
        }
        // Some month in the set must have one of the days; Feb counts 29.
        (1..=12)
            .any(|m| self.months.has(m) && (1..=days_in_month(2024, m)).any(|d| self.days.has(d)))
    }

    /// The first wall-clock time strictly after `after` that matches.
    pub fn next_naive(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut t = after.with_nanosecond(0)? + Duration::seconds(1);
        let limit_year = after.year() + 9;
        loop {
            if t.year() > limit_year {
                return None;
            }
            if !self.months.has(t.month()) {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_time(NaiveTime::MIN);
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().succ_opt()?.and_time(NaiveTime::MIN);
                continue;
            }
            let Some(h) = self.hours.next_from(t.hour()) else {
                t = t.date().succ_opt()?.and_time(NaiveTime::MIN);
                continue;
            };
            if h != t.hour() {
                t = t.date().and_hms_opt(h, 0, 0)?;
            }
            let Some(m) = self.minutes.next_from(t.minute()) else {
                t = t.date().and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
                continue;
            };
            if m != t.minute() {
                t = t.date().and_hms_opt(t.hour(), m, 0)?;
            }
            let Some(s) = self.seconds.next_from(t.second()) else {
                t = t.date().and_hms_opt(t.hour(), t.minute(), 0)? + Duration::minutes(1);
                continue;
            };
            return t.date().and_hms_opt(t.hour(), t.minute(), s);
        }
    }

    /// Whether a repeated (fall-back) hour runs in both passes: the hour
    /// field is `*`.
    pub fn runs_both_passes(&self) -> bool {
        self.hours_wild
    }

    /// The first fire strictly after `after`, applying the DST rules in the
    /// module documentation.
    pub fn next_fire(&self, tz: Tz, after: DateTime<Utc>) -> Option<Fire> {
        let next = self.next_in_order(tz, after)?;
        if !self.hours_wild {
            return Some(next);
        }
        // Inside the first pass of a repeated hour, the second pass starts
        // again from the hour's first minute, earlier in wall-clock order
        // than what comes after the pass.
        match self.second_pass_fire(tz, after) {
            Some(f) if f.at < next.at => Some(f),
            _ => Some(next),
        }
    }

    /// The first fire after `after` found by walking wall-clock times
    /// forward from `after`'s own.
    fn next_in_order(&self, tz: Tz, after: DateTime<Utc>) -> Option<Fire> {
        let mut nominal = after.with_timezone(&tz).naive_local();
        loop {
            nominal = self.next_naive(nominal)?;
            let fire = match tz.from_local_datetime(&nominal) {
                LocalResult::Single(t) => Fire {
                    at: t.with_timezone(&Utc),
                    nominal,
                    shift: Shift::None,
                },
                LocalResult::Ambiguous(first, second) => {
                    let first = first.with_timezone(&Utc);
                    Fire {
                        // In the second pass, the second occurrence is next.
                        at: if self.hours_wild && first <= after {
                            second.with_timezone(&Utc)
                        } else {
                            first
                        },
                        nominal,
                        shift: Shift::Repeated,
                    }
                }
                LocalResult::None => Fire {
                    at: gap_end(tz, nominal),
                    nominal,
                    shift: Shift::Gap,
                },
            };
            // Skips the second pass of a repeated hour (for jobs that run
            // once) and the other nominal times of a gap already fired at
            // its end.
            if fire.at > after {
                return Some(fire);
            }
        }
    }

    /// When `after` is in the first pass of a repeated hour: the first fire
    /// of the second pass.
    fn second_pass_fire(&self, tz: Tz, after: DateTime<Utc>) -> Option<Fire> {
        let local = after.with_timezone(&tz).naive_local();
        let LocalResult::Ambiguous(first, second) = tz.from_local_datetime(&local) else {
            return None;
        };
        if first.with_timezone(&Utc) != after {
            return None;
        }
        let (first, second) = (first.with_timezone(&Utc), second.with_timezone(&Utc));
        let fold = second - first;
        // The instant the clocks went back: the first with the later offset.
        let later = offset_seconds(tz, second);
        let (mut lo, mut hi) = (first, second);
        while hi - lo > Duration::seconds(1) {
            let mid = lo + (hi - lo) / 2;
            if offset_seconds(tz, mid) == later {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let start = hi.with_timezone(&tz).naive_local();
        let end = start + fold;
        let mut n = start - Duration::seconds(1);
        loop {
            n = self.next_naive(n)?;
            if n >= end {
                return None;
            }
            if let LocalResult::Ambiguous(_, s) = tz.from_local_datetime(&n) {
                let at = s.with_timezone(&Utc);
                if at > after {
                    return Some(Fire {
                        at,
                        nominal: n,
                        shift: Shift::Repeated,
                    });
                }
            }
        }
    }

    /// Fires in `(after, until]`, at most `limit` of them.
    pub fn fires_between(
        &self,
        tz: Tz,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<Fire> {
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < limit {
            match self.next_fire(tz, cursor) {
                Some(f) if f.at <= until => {
                    cursor = f.at;
                    out.push(f);
                }
                _ => break,
            }
        }
        out
    }

    /// The last fire strictly before `before`, by the same rules as
    /// [`CronExpr::next_fire`]. Searched with forward searches only: the
    /// window back is doubled until it holds a fire, then halved down to a
    /// second, so it costs a few dozen of them whatever the schedule.
    /// `None` if it did not fire in the ten years before.
    pub fn prev_fire(&self, tz: Tz, before: DateTime<Utc>) -> Option<Fire> {
        let fire_from = |t: DateTime<Utc>| self.next_fire(tz, t).filter(|f| f.at < before);
        // A fire lies in (far, before); none in (near, before).
        let mut near = before;
        let mut width = Duration::seconds(1);
        let mut far = loop {
            let from = before - width;
            if fire_from(from).is_some() {
                break from;
            }
            if width > LOOKBACK {
                return None;
            }
            near = from;
            width = width * 2;
        };
        while near - far > Duration::seconds(1) {
            let mid = far + (near - far) / 2;
            if fire_from(mid).is_some() {
                far = mid;
            } else {
                near = mid;
            }
        }
        fire_from(far)
    }

    /// The schedule's period at `now`: from its last fire at or before
    /// `now` to its first after. A weekday job on a Saturday has 72 h; a
    /// daily job across a DST change 23 h or 25 h.
    pub fn period_at(&self, tz: Tz, now: DateTime<Utc>) -> Option<std::time::Duration> {
        let next = self.next_fire(tz, now)?.at;
        let prev = self.prev_fire(tz, next)?.at;
        (next - prev).to_std().ok()
    }
}

/// How far back [`CronExpr::prev_fire`] looks: past the nine years
/// `next_naive` looks ahead, so any expression that fires at all is found.
const LOOKBACK: Duration = Duration::days(366 * 10);

/// The first instant whose wall-clock time is past the nonexistent `nominal`:
/// the moment the clocks jumped.
fn gap_end(tz: Tz, nominal: NaiveDateTime) -> DateTime<Utc> {
    // Any wall-clock time lies within 15 h of the same digits read as UTC.
    let base = Utc.from_utc_datetime(&nominal);
    let mut lo = base - Duration::hours(15);
    let mut hi = base + Duration::hours(15);
    while hi - lo > Duration::seconds(1) {
        let mid = lo + (hi - lo) / 2;
        if mid.with_timezone(&tz).naive_local() > nominal {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The UTC offset of `tz` at `at`, in seconds east.
pub fn offset_seconds(tz: Tz, at: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc()
}

/// A timezone name that is not in the IANA database, with the nearest one
/// that is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownTimezone {
    #[error("unknown timezone `{name}` (did you mean `{hint}`?)")]
    Near { name: String, hint: String },
    #[error("unknown timezone `{0}` (use an IANA name such as `Asia/Kolkata` or `UTC`)")]
    Unknown(String),
}

/// Parses an IANA timezone name with a helpful error.
pub fn parse_timezone(name: &str) -> Result<Tz, UnknownTimezone> {
    name.parse::<Tz>().map_err(|_| {
        let hint = chrono_tz::TZ_VARIANTS
            .iter()
            .map(|t| t.name())
            .filter(|n| strsim::jaro_winkler(&n.to_lowercase(), &name.to_lowercase()) > 0.9)
            .max_by(|a, b| {
                strsim::jaro_winkler(a, name)
                    .partial_cmp(&strsim::jaro_winkler(b, name))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        match hint {
            Some(h) => UnknownTimezone::Near {
                name: name.to_string(),
                hint: h.to_string(),
            },
            None => UnknownTimezone::Unknown(name.to_string()),
        }
    })
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    #[test]
    fn schedules_in_words() {
        let table = [
            ("0 9 * * *", "at 09:00 every day"),
            ("15 9 * * *", "at 09:15 every day"),
            ("30 2 * * 1-5", "at 02:30 on Mon–Fri"),
            ("0 9,21 * * *", "at 09:00 and 21:00 every day"),
            ("0 0 1 * *", "at 00:00 on day 1 of the month"),
            (
                "0 0 1,15 * 0",
                "at 00:00 on day 1 and 15 of the month or on Sun",
            ),
            ("@weekly", "at 00:00 on Sun"),
            ("0 0 1 1 *", "at 00:00 on day 1 of the month in Jan"),
            ("*/5 * * * *", "every 5 minutes"),
            ("* * * * *", "every minute"),
            ("* * * * * *", "every second"),
            ("*/10 * * * * *", "every 10 seconds"),
            ("0 * * * *", "at minute 0 of the hour"),
            ("15,45 * * * *", "at minute 15 and 45 of the hour"),
            ("0 */2 * * *", "at minute 0 of the hour, every 2 hours"),
            (
                "*/15 9-17 * * 1-5",
                "every 15 minutes, in hours 09–17 on Mon–Fri",
            ),
            ("0 6 * * 6,0", "at 06:00 on Sat and Sun"),
            ("30 * * * * *", "at second 30 of the minute"),
            ("0 9-17 * * *", "at minute 0 of the hour, in hours 09–17"),
            ("0 0 * 1-3,7 *", "at 00:00 every day in Jan–Mar and Jul"),
        ];
        for (cron, want) in table {
            let e: CronExpr = cron.parse().unwrap();
            assert_eq!(e.describe(), want, "{cron}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fires(expr: &str, tz: &str, after: &str, n: usize) -> Vec<(String, Shift)> {
        let e: CronExpr = expr.parse().unwrap();
        let tz: Tz = tz.parse().unwrap();
        let mut out = Vec::new();
        let mut t = utc(after);
        for _ in 0..n {
            let f = e.next_fire(tz, t).unwrap();
            out.push((f.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(), f.shift));
            t = f.at;
        }
        out
    }

    fn at(list: &[(String, Shift)]) -> Vec<&str> {
        list.iter().map(|(s, _)| s.as_str()).collect()
    }

    #[test]
    fn parses_the_usual_forms() {
        let cases = [
            "*/5 * * * *",
            "*/5 * * * * *",
            "0 7 * * MON-FRI",
            "30 2 * * *",
            "0 0 1,15 * *",
            "0 9 * JAN-MAR,dec sun",
            "@daily",
            "@hourly",
            "5/15 * * * *",
            "0 0 * * 7",
        ];
        for c in cases {
            assert!(c.parse::<CronExpr>().is_ok(), "{c} should parse");
        }
    }

    #[test]
    fn rejects_bad_expressions_with_offsets() {
        let cases: &[(&str, &str, usize)] = &[
            ("* * * *", "expected 5 fields", 0),
            (
                "61 * * * *",
                "minute field `61`: 61 is out of range 0-59",
                0,
            ),
            ("0 25 * * *", "hour field `25`", 2),
            ("0 0 * * MOO", "day-of-week field `MOO`", 8),
            ("*/0 * * * *", "step must be at least 1", 2),
            ("0 0 5-1 * *", "runs backwards", 4),
            ("0 0 30 2 *", "never fires", 4),
            ("@fortnightly", "unknown macro", 0),
            ("0 0 1,,2 * *", "empty list item", 6),
        ];
        for (expr, want, offset) in cases {
            let err = expr.parse::<CronExpr>().unwrap_err();
            assert!(
                err.message.contains(want),
                "{expr}: got {:?}, want {want:?}",
                err.message
            );
            assert_eq!(err.offset, *offset, "{expr}: offset");
        }
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        // 1st of the month OR any Monday, Vixie style.
        let got = fires("0 0 1 * MON", "UTC", "2026-06-01T00:00:00Z", 3);
        assert_eq!(
            at(&got),
            [
                "2026-06-08T00:00:00Z",
                "2026-06-15T00:00:00Z",
                "2026-06-22T00:00:00Z"
            ]
        );
        let got = fires("0 0 1 * MON", "UTC", "2026-06-29T00:00:00Z", 1);
        assert_eq!(at(&got), ["2026-07-01T00:00:00Z"]);
    }

    #[test]
    fn per_second_schedule_every_five_seconds() {
        let got = fires("*/5 * * * * *", "UTC", "2026-01-01T00:00:58Z", 3);
        assert_eq!(
            at(&got),
            [
                "2026-01-01T00:01:00Z",
                "2026-01-01T00:01:05Z",
                "2026-01-01T00:01:10Z"
            ]
        );
    }

    /// Spring forward: the nonexistent local time runs once at the end of the
    /// gap; the days around it are unaffected.
    #[test]
    fn spring_forward_table() {
        // (expr, tz, after, expected UTC fires, expected shifts)
        let cases: &[(&str, &str, &str, &[&str], &[Shift])] = &[
            // New York, 2026-03-08 02:00 EST -> 03:00 EDT.
            (
                "30 2 * * *",
                "America/New_York",
                "2026-03-07T00:00:00Z",
                &[
                    "2026-03-07T07:30:00Z",
                    "2026-03-08T07:00:00Z",
                    "2026-03-09T06:30:00Z",
                ],
                &[Shift::None, Shift::Gap, Shift::None],
            ),
            // Every 15 minutes through the gap: 02:00-02:45 collapse to one
            // fire at 03:00 EDT, then 03:15 continues.
            (
                "*/15 * * * *",
                "America/New_York",
                "2026-03-08T06:40:00Z",
                &[
                    "2026-03-08T06:45:00Z",
                    "2026-03-08T07:00:00Z",
                    "2026-03-08T07:15:00Z",
                ],
                &[Shift::None, Shift::Gap, Shift::None],
            ),
            // London, 2026-03-29 01:00 GMT -> 02:00 BST.
            (
                "30 1 * * *",
                "Europe/London",
                "2026-03-28T00:00:00Z",
                &[
                    "2026-03-28T01:30:00Z",
                    "2026-03-29T01:00:00Z",
                    "2026-03-30T00:30:00Z",
                ],
                &[Shift::None, Shift::Gap, Shift::None],
            ),
            // A time just after the gap is ordinary.
            (
                "0 3 * * *",
                "America/New_York",
                "2026-03-08T00:00:00Z",
                &["2026-03-08T07:00:00Z", "2026-03-09T07:00:00Z"],
                &[Shift::None, Shift::None],
            ),
            // A gap time and the gap end in one expression still fire once.
            (
                "0 2,3 * * *",
                "America/New_York",
                "2026-03-08T05:00:00Z",
                &["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"],
                &[Shift::Gap, Shift::None],
            ),
        ];
        for (expr, tz, after, want, shifts) in cases {
            let got = fires(expr, tz, after, want.len());
            assert_eq!(at(&got), *want, "{expr} in {tz}");
            let got_shifts: Vec<Shift> = got.iter().map(|(_, s)| *s).collect();
            assert_eq!(&got_shifts, shifts, "{expr} in {tz} shifts");
        }
    }

    /// Fall back: a repeated local time runs once, at its first occurrence.
    #[test]
    fn fall_back_table() {
        let cases: &[(&str, &str, &str, &[&str], &[Shift])] = &[
            // New York, 2026-11-01 02:00 EDT -> 01:00 EST; 01:30 occurs twice.
            (
                "30 1 * * *",
                "America/New_York",
                "2026-10-31T00:00:00Z",
                &[
                    "2026-10-31T05:30:00Z",
                    "2026-11-01T05:30:00Z",
                    "2026-11-02T06:30:00Z",
                ],
                &[Shift::None, Shift::Repeated, Shift::None],
            ),
            // Hourly (hour field `*`): 01:00 fires in both passes, EDT then
            // EST, then 02:00 EST. No gap longer than the interval.
            (
                "0 * * * *",
                "America/New_York",
                "2026-11-01T03:30:00Z",
                &[
                    "2026-11-01T04:00:00Z",
                    "2026-11-01T05:00:00Z",
                    "2026-11-01T06:00:00Z",
                    "2026-11-01T07:00:00Z",
                ],
                &[Shift::None, Shift::Repeated, Shift::Repeated, Shift::None],
            ),
            // Every 30 minutes: both passes of 01:00 and 01:30.
            (
                "*/30 * * * *",
                "America/New_York",
                "2026-11-01T04:40:00Z",
                &[
                    "2026-11-01T05:00:00Z",
                    "2026-11-01T05:30:00Z",
                    "2026-11-01T06:00:00Z",
                    "2026-11-01T06:30:00Z",
                    "2026-11-01T07:00:00Z",
                ],
                &[
                    Shift::Repeated,
                    Shift::Repeated,
                    Shift::Repeated,
                    Shift::Repeated,
                    Shift::None,
                ],
            ),
            // London, every 30 minutes through 01:00-01:59 twice.
            (
                "*/30 * * * *",
                "Europe/London",
                "2026-10-24T23:50:00Z",
                &[
                    "2026-10-25T00:00:00Z",
                    "2026-10-25T00:30:00Z",
                    "2026-10-25T01:00:00Z",
                    "2026-10-25T01:30:00Z",
                    "2026-10-25T02:00:00Z",
                ],
                &[
                    Shift::Repeated,
                    Shift::Repeated,
                    Shift::Repeated,
                    Shift::Repeated,
                    Shift::None,
                ],
            ),
            // A fixed hour inside the fold still fires once, at the first.
            (
                "15 1 * * *",
                "Europe/London",
                "2026-10-24T23:50:00Z",
                &["2026-10-25T00:15:00Z", "2026-10-26T01:15:00Z"],
                &[Shift::Repeated, Shift::None],
            ),
            // London, 2026-10-25 02:00 BST -> 01:00 GMT.
            (
                "30 1 * * *",
                "Europe/London",
                "2026-10-24T00:00:00Z",
                &[
                    "2026-10-24T00:30:00Z",
                    "2026-10-25T00:30:00Z",
                    "2026-10-26T01:30:00Z",
                ],
                &[Shift::None, Shift::Repeated, Shift::None],
            ),
        ];
        for (expr, tz, after, want, shifts) in cases {
            let got = fires(expr, tz, after, want.len());
            assert_eq!(at(&got), *want, "{expr} in {tz}");
            let got_shifts: Vec<Shift> = got.iter().map(|(_, s)| *s).collect();
            assert_eq!(&got_shifts, shifts, "{expr} in {tz} shifts");
        }
    }

    /// Starting inside the second pass of a repeated hour continues that
    /// pass and never fires the first pass again.
    #[test]
    fn starting_in_second_pass_does_not_repeat() {
        // 2026-11-01T06:10Z is 01:10 EST, the second 01:10.
        let got = fires(
            "*/20 * * * *",
            "America/New_York",
            "2026-11-01T06:10:00Z",
            3,
        );
        assert_eq!(
            at(&got),
            [
                "2026-11-01T06:20:00Z",
                "2026-11-01T06:40:00Z",
                "2026-11-01T07:00:00Z"
            ]
        );
        // A fixed-hour job started in the second pass waits for tomorrow.
        let got = fires("20 1 * * *", "America/New_York", "2026-11-01T06:10:00Z", 1);
        assert_eq!(at(&got), ["2026-11-02T06:20:00Z"]);
    }

    /// Per-second and per-minute jobs have no gap on a fall-back night: the
    /// largest distance between fires is the interval.
    #[test]
    fn wildcard_hour_jobs_never_pause_at_fall_back() {
        for (expr, tz, from, step) in [
            ("* * * * *", "America/New_York", "2026-11-01T04:30:00Z", 60),
            ("*/5 * * * *", "Europe/London", "2026-10-24T23:30:00Z", 300),
        ] {
            let e: CronExpr = expr.parse().unwrap();
            let tz: Tz = tz.parse().unwrap();
            let f = e.fires_between(tz, utc(from), utc(from) + Duration::hours(4), 10_000);
            assert_eq!(f.len() as i64, 4 * 3600 / step, "{expr}");
            for w in f.windows(2) {
                assert_eq!(
                    (w[1].at - w[0].at).num_seconds(),
                    step,
                    "{expr} at {}",
                    w[0].at
                );
            }
        }
    }

    #[test]
    fn fires_between_is_bounded() {
        let e: CronExpr = "* * * * * *".parse().unwrap();
        let f = e.fires_between(
            Tz::UTC,
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-01T01:00:00Z"),
            10,
        );
        assert_eq!(f.len(), 10);
        let f = e.fires_between(
            Tz::UTC,
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-01T00:00:03Z"),
            10,
        );
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn timezone_errors_suggest() {
        assert!(parse_timezone("Asia/Kolkata").is_ok());
        let e = parse_timezone("Asia/Kolkatta").unwrap_err().to_string();
        assert!(e.contains("did you mean `Asia/Kolkata`"), "{e}");
        let e = parse_timezone("Mars/Olympus").unwrap_err().to_string();
        assert!(e.contains("unknown timezone `Mars/Olympus`"), "{e}");
    }

    #[test]
    fn period_table() {
        // (expr, tz, now, seconds from the fire before `now` to the next)
        let cases: &[(&str, &str, &str, u64)] = &[
            ("* * * * * *", "UTC", "2026-01-01T00:00:00.500Z", 1),
            ("* * * * * *", "UTC", "2026-01-01T00:00:00Z", 1),
            ("*/5 * * * *", "UTC", "2026-01-01T00:02:00Z", 300),
            ("*/5 * * * *", "UTC", "2026-01-01T00:05:00Z", 300),
            ("0 3 * * *", "UTC", "2026-01-01T12:00:00Z", 86_400),
            // Weekdays at 09:00: Saturday's period runs Friday to Monday.
            ("0 9 * * 1-5", "UTC", "2026-01-03T12:00:00Z", 3 * 86_400),
            ("0 9 * * 1-5", "UTC", "2026-01-06T12:00:00Z", 86_400),
            // 02:30 does not exist on 2026-03-08 in New York: it fires at
            // 03:00 EDT, 23.5 h after the day before's 02:30 EST.
            (
                "30 2 * * *",
                "America/New_York",
                "2026-03-08T05:00:00Z",
                84_600,
            ),
            // 03:00 the day the clocks go back: 25 h after the day before.
            (
                "0 3 * * *",
                "America/New_York",
                "2026-11-01T05:00:00Z",
                90_000,
            ),
            (
                "0 3 * * *",
                "America/New_York",
                "2026-11-02T05:00:00Z",
                86_400,
            ),
            // Every 30 min with the hour a wildcard: both passes of the
            // repeated hour fire, so the period stays 30 min.
            (
                "*/30 * * * *",
                "America/New_York",
                "2026-11-01T05:40:00Z",
                1_800,
            ),
            (
                "*/30 * * * *",
                "America/New_York",
                "2026-11-01T06:10:00Z",
                1_800,
            ),
            ("0 0 1 * *", "UTC", "2026-02-15T00:00:00Z", 28 * 86_400),
            ("0 0 1 1 *", "UTC", "2026-06-01T00:00:00Z", 365 * 86_400),
            // Leap days only: 2024-02-29 to 2028-02-29.
            ("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", 1_461 * 86_400),
        ];
        for (expr, tz, now, want) in cases {
            let e: CronExpr = expr.parse().unwrap();
            let tz: Tz = tz.parse().unwrap();
            let got = e.period_at(tz, utc(now)).map(|d| d.as_secs());
            assert_eq!(got, Some(*want), "{expr} in {tz} at {now}");
        }
    }

    #[test]
    fn prev_fire_is_the_last_fire_strictly_before() {
        let e: CronExpr = "0 */6 * * *".parse().unwrap();
        let tz: Tz = "UTC".parse().unwrap();
        let at = |s| e.prev_fire(tz, utc(s)).map(|f| f.at);
        assert_eq!(
            at("2026-01-01T06:00:00Z"),
            Some(utc("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            at("2026-01-01T06:00:01Z"),
            Some(utc("2026-01-01T06:00:00Z"))
        );
        assert_eq!(
            at("2026-01-01T05:59:59Z"),
            Some(utc("2026-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn leap_day_only_schedule_finds_next_leap_year() {
        let got = fires("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", 1);
        assert_eq!(at(&got), ["2028-02-29T00:00:00Z"]);
    }
}
