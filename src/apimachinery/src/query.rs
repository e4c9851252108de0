//! Query parameters as apimachinery's parameter codec reads them into
//! `ListOptions`: a boolean parameter is true when present with any value
//! but `0` or `false` (any case), as `Convert_Slice_string_To_bool` does, so
//! `?watch`, `?watch=` and `?watch=yes` are watches and `?watch=FALSE` is
//! not. The API (what to serve) and authorization (which verb to check)
//! read `watch` through here, so they never disagree about a request.

/// A boolean query parameter given its first value (`None`: absent).
pub fn bool_param(first: Option<&str>) -> bool {
    first.is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The first value of `key` in a raw query string (`a=b&key=v`); a key
/// without `=` has the empty value.
pub fn first_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_but_zero_or_false_is_true_when_present() {
        for v in ["true", "1", "", "yes", "True", "t"] {
            assert!(bool_param(Some(v)), "{v:?}");
        }
        for v in ["false", "0", "FALSE", "False"] {
            assert!(!bool_param(Some(v)), "{v:?}");
        }
        assert!(!bool_param(None));
    }

    #[test]
    fn the_first_value_of_the_exact_key() {
        assert_eq!(first_value("a=b&watch=True&watch=false", "watch"), Some("True"));
        assert_eq!(first_value("watch", "watch"), Some(""));
        assert_eq!(first_value("watching=true", "watch"), None);
        assert_eq!(first_value("", "watch"), None);
    }
}
