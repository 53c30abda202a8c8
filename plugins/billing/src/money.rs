//! Amounts in the smallest currency unit, written for people.

/// Currencies Stripe counts in whole units (no cents).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// `9900`, `usd` → `99.00`; `500`, `jpy` → `500`.
pub fn format_amount(amount: i64, currency: &str) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    if ZERO_DECIMAL.contains(&currency.to_ascii_lowercase().as_str()) {
        format!("{sign}{abs}")
    } else {
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(format_amount(9900, "usd"), "99.00");
        assert_eq!(format_amount(5, "eur"), "0.05");
        assert_eq!(format_amount(-1250, "usd"), "-12.50");
        assert_eq!(format_amount(500, "JPY"), "500");
        assert_eq!(format_amount(i64::MIN, "usd"), "-92233720368547758.08");
    }
}
