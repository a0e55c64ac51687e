//! Byte amounts as Kubernetes prints them: the largest binary suffix
//! (`Ki`…`Ei`) that divides the amount exactly, else plain bytes.

/// `bytes` with the largest exact binary suffix (`100Mi`, `3Gi`, `1536Ki`),
/// or as a plain number when none divides it (`0`, `1500`).
pub fn binary_bytes(bytes: i128) -> String {
    for (suffix, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        let unit = 1i128 << shift;
        if bytes != 0 && bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::binary_bytes;

    #[test]
    fn byte_amounts_take_the_largest_exact_binary_suffix() {
        let cases: [(i128, &str); 9] = [
            (0, "0"),
            (1, "1"),
            (1500, "1500"),
            (1024, "1Ki"),
            (1536 << 10, "1536Ki"),
            (100 << 20, "100Mi"),
            (3 << 30, "3Gi"),
            (1 << 60, "1Ei"),
            (-(2 << 20), "-2Mi"),
        ];
        for (bytes, want) in cases {
            assert_eq!(binary_bytes(bytes), want, "{bytes}");
        }
    }
}
