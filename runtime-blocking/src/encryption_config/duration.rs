//! Go's `time.ParseDuration`, which kube-apiserver uses for `kms.timeout` (`metav1.Duration`).

/// Parses a Go duration (`3s`, `1.5s`, `1m30s`, `500ms`, `-2h`, `0`) into signed nanoseconds,
/// accepting exactly what Go accepts (units `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`; a bare
/// number other than `0` has no unit and is refused). Errors use Go's wording.
pub fn parse_go_duration(text: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Go caps durations at i64 nanoseconds (about 292 years).
    let max = i128::from(i64::MAX);
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        let (frac_digits, after_num) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let n = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(n)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let unit_len = after_num
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(after_num.len(), |(i, _)| i);
        let (unit, after_unit) = after_num.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {text:?}"));
        }
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        let mut whole: i128 = 0;
        for d in int_digits.bytes() {
            whole = whole * 10 + i128::from(d - b'0');
            if whole > max {
                return Err(invalid());
            }
        }
        let mut value = whole
            .checked_mul(scale)
            .filter(|v| *v <= max)
            .ok_or_else(invalid)?;
        // Fraction: digits beyond nanosecond precision are dropped, as Go does.
        let mut frac_scale = scale;
        for d in frac_digits.bytes() {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            value += i128::from(d - b'0') * frac_scale;
        }
        total += value;
        if total > max {
            return Err(invalid());
        }
        rest = after_unit;
    }
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;

    #[test]
    fn accepts_what_go_accepts() {
        assert_eq!(parse_go_duration("3s"), Ok(3_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("0s"), Ok(0));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_go_duration("10\u{b5}s"), Ok(10_000));
        assert_eq!(parse_go_duration("-2h"), Ok(-7_200_000_000_000));
        assert_eq!(parse_go_duration("+1ns"), Ok(1));
    }

    #[test]
    fn refuses_what_go_refuses() {
        for bad in [
            "",
            "3",
            "s",
            ".s",
            "3 s",
            "3sec",
            "1d",
            "-",
            "9999999999999999999h",
            "3s5",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_go_duration("3"),
            Err("time: missing unit in duration \"3\"".to_string())
        );
        assert_eq!(
            parse_go_duration("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".to_string())
        );
    }
}
