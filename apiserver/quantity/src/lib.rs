//! Kubernetes resource quantities (`128Mi`, `1G`, `500m`, `1.5`): one
//! reading for the scheduler, quotas and the node agent, so that what fits
//! a node is what the node then grants. Fractions round up, as Kubernetes
//! rounds a quantity to its unit; negative or malformed ones are `None`.
//!
//! May import: nothing.

/// A byte quantity (`limits.memory`, `sizeLimit`) in bytes.
pub fn bytes(q: &str) -> Option<u64> {
    const UNITS: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ];
    let q = q.trim();
    let (number, scale) = UNITS
        .iter()
        .find_map(|(suffix, scale)| q.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((q, 1.0));
    let value = number.parse::<f64>().ok()? * scale;
    (value.is_finite() && value >= 0.0).then(|| value.ceil() as u64)
}

/// A CPU quantity (`limits.cpu`) in millicores.
pub fn millicores(q: &str) -> Option<u32> {
    let q = q.trim();
    let cores = match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok()? / 1000.0,
        None => q.parse::<f64>().ok()?,
    };
    let m = (cores * 1000.0).ceil();
    (m.is_finite() && m >= 0.0 && m <= f64::from(u32::MAX)).then_some(m as u32)
}

/// Millicores as Kubernetes writes them: whole cores, else millicores.
pub fn format_millicores(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes as Kubernetes writes them: in the largest binary unit that
/// divides them.
pub fn format_bytes(b: u64) -> String {
    for (unit, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if b != 0 && b.is_multiple_of(size) {
            return format!("{}{unit}", b / size);
        }
    }
    b.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(bytes("128Mi"), Some(128 << 20));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1.5Ki"), Some(1536));
        assert_eq!(bytes("100"), Some(100));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("x"), None);
        assert_eq!(bytes("-1Mi"), None);
        assert_eq!(millicores("100m"), Some(100));
        assert_eq!(millicores("1.5"), Some(1500));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("nope"), None);
        // Written back as Kubernetes writes them.
        for q in ["250m", "2"] {
            assert_eq!(format_millicores(u64::from(millicores(q).unwrap())), q);
        }
        for q in ["64Mi", "1Gi", "1000"] {
            assert_eq!(format_bytes(bytes(q).unwrap()), q);
        }
    }
}
