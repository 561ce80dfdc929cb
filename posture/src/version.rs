//! Version ordering, per operating-system family: a Debian or Fedora package version is
//! not ordered like a Windows build number.

use std::cmp::Ordering;

use crate::report::OsFamily;

/// Compares two versions the way `family` orders them: dpkg's rules on Linux (epochs,
/// `~` before anything), dotted numbers elsewhere (`10.0.19045.4291`, `14.6.1`).
pub fn compare(family: &OsFamily, a: &str, b: &str) -> Ordering {
    match family {
        OsFamily::Linux => crate::linux::dpkg::compare(a, b),
        OsFamily::Windows | OsFamily::Macos => dotted(a, b),
    }
}

/// Numeric components compared as numbers, missing ones as zero (`14.0` = `14`); a
/// component that is not a number compares as text after the numbers.
fn dotted(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<String> {
        s.trim()
            .split(['.', '-', ' '])
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).map_or("0", String::as_str);
        let y = pb.get(i).map_or("0", String::as_str);
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_its_own_order() {
        use Ordering::*;
        let w = OsFamily::Windows;
        assert_eq!(compare(&w, "10.0.19045", "10.0.19045"), Equal);
        assert_eq!(compare(&w, "10.0.22631", "10.0.19045"), Greater);
        assert_eq!(
            compare(&w, "10.0.9200", "10.0.19045"),
            Less,
            "numbers, not text"
        );
        assert_eq!(compare(&OsFamily::Macos, "14", "14.0"), Equal);
        assert_eq!(compare(&OsFamily::Macos, "13.6.9", "14.0"), Less);
        let l = OsFamily::Linux;
        assert_eq!(compare(&l, "115.0~esr", "115.0"), Less, "dpkg's tilde");
        assert_eq!(compare(&l, "1:1.0", "2.0"), Greater, "dpkg's epoch");
    }

    proptest::proptest! {
        #[test]
        fn dotted_is_a_total_order(a in "[0-9a-z.]{0,12}", b in "[0-9a-z.]{0,12}") {
            let w = OsFamily::Windows;
            proptest::prop_assert_eq!(compare(&w, &a, &b), compare(&w, &b, &a).reverse());
        }
    }
}
