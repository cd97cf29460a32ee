//! How the command line's flag values are read: sizes, durations, labels
//! and taints, in the forms Kubernetes' components take them.

/// A byte quantity as Kubernetes writes them (`512Ki`, `10Mi`, `1G`).
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let units = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    let (n, m) = units
        .iter()
        .find_map(|(u, m)| s.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((s, 1));
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(m))
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("{s:?} is not a size such as 10Mi"))
}

/// A duration as Kubernetes flags write them: `0s`, `90s`, `2m`, `1h30m`.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 90s or 2m");
    let mut total = 0u64;
    let mut number = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit = match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// A label as `--node-labels` writes one: `key=value`.
pub(crate) fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?}: a label is key=value")),
    }
}

/// A taint as `--register-with-taints` writes one: `key[=value]:Effect`.
pub(crate) fn parse_taint(s: &str) -> Result<serde_json::Value, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: a taint is key[=value]:Effect"))?;
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        return Err(format!(
            "{s:?}: the effect must be NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    if key.is_empty() {
        return Err(format!("{s:?}: a taint needs a key"));
    }
    let mut t = serde_json::json!({"key": key, "effect": effect});
    if !value.is_empty() {
        t["value"] = serde_json::json!(value);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_and_labels_read_as_the_kubelet_reads_them() {
        assert_eq!(
            parse_taint("shoal.dev/wasm=true:NoSchedule").unwrap(),
            serde_json::json!({"key": "shoal.dev/wasm", "value": "true", "effect": "NoSchedule"})
        );
        assert_eq!(
            parse_taint("dedicated:NoExecute").unwrap(),
            serde_json::json!({"key": "dedicated", "effect": "NoExecute"})
        );
        assert!(
            parse_taint("dedicated")
                .unwrap_err()
                .contains("key[=value]:Effect")
        );
        assert!(parse_taint("a=b:Sometimes").unwrap_err().contains("effect"));
        assert!(parse_taint("=b:NoSchedule").is_err());
        assert_eq!(
            parse_label("tier=edge").unwrap(),
            ("tier".to_string(), "edge".to_string())
        );
        assert!(parse_label("tier").is_err() && parse_label("=x").is_err());
    }
}
