//! A form body as name–value pairs, from either encoding a browser sends: URL-encoded
//! (every console form) or `multipart/form-data` (RFC 7578: the policy proposal, whose
//! file input uploads the file). The caller bounds the body's size first; this bounds
//! the number of fields and the length of names, and takes values as UTF-8 text (a form
//! of the console has no binary field).

/// Most fields a form may have.
pub const MAX_FIELDS: usize = 32;
/// Longest field name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The fields of `body`, sent with `content_type`; an error says what is wrong.
pub fn fields(content_type: Option<&str>, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let content_type = content_type.unwrap_or("application/x-www-form-urlencoded");
    let (mime, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    let pairs = match mime.trim().to_ascii_lowercase().as_str() {
        "application/x-www-form-urlencoded" => {
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
                .map_err(|e| format!("the form: {e}"))?
        }
        "multipart/form-data" => multipart(&boundary(params)?, body)?,
        other => return Err(format!("a form is not sent as {other:?}")),
    };
    if pairs.len() > MAX_FIELDS {
        return Err(format!("the form has more than {MAX_FIELDS} fields"));
    }
    if let Some((name, _)) = pairs.iter().find(|(n, _)| n.len() > MAX_NAME_LEN) {
        return Err(format!(
            "the field name {:?}… is longer than {MAX_NAME_LEN} bytes",
            name.chars().take(16).collect::<String>()
        ));
    }
    Ok(pairs)
}

/// `boundary=...` (quoted or not) among a content type's parameters.
fn boundary(params: &str) -> Result<String, String> {
    let b = params
        .split(';')
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| v.trim().trim_matches('"'))
        })
        .ok_or("multipart/form-data without a boundary")?;
    if b.is_empty() || b.len() > 70 {
        return Err("a multipart boundary has 1 to 70 characters".into());
    }
    Ok(b.to_owned())
}

fn multipart(boundary: &str, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let delimiter = format!("--{boundary}");
    let mut rest = body
        .strip_prefix(delimiter.as_bytes())
        .ok_or("the multipart body does not start with its boundary")?;
    let separator = format!("\r\n--{boundary}");
    let mut out = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(out);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("a multipart boundary is not followed by a line break")?;
        let end = find(rest, separator.as_bytes()).ok_or("a multipart part has no end")?;
        let part = &rest[..end];
        rest = &rest[end + separator.len()..];
        let head_end = find(part, b"\r\n\r\n").ok_or("a multipart part has no header")?;
        let head = std::str::from_utf8(&part[..head_end])
            .map_err(|_| "a multipart header is not UTF-8")?;
        let name = head
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
            .and_then(|(_, v)| disposition_name(v))
            .ok_or("a multipart part has no form-data name")?;
        let value = std::str::from_utf8(&part[head_end + 4..])
            .map_err(|_| format!("the field {name:?} is not UTF-8 text"))?;
        if out.len() == MAX_FIELDS {
            return Err(format!("the form has more than {MAX_FIELDS} fields"));
        }
        out.push((name, value.to_owned()));
    }
}

/// `form-data; name="proposal"; filename="p.toml"` → `proposal`.
fn disposition_name(value: &str) -> Option<String> {
    let mut parts = value.split(';');
    if !parts.next()?.trim().eq_ignore_ascii_case("form-data") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("name")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=----b0undary";

    fn body(parts: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
        let mut out = String::new();
        for (name, file, value) in parts {
            out.push_str("------b0undary\r\nContent-Disposition: form-data; name=\"");
            out.push_str(name);
            out.push('"');
            if let Some(f) = file {
                out.push_str(&format!(
                    "; filename=\"{f}\"\r\nContent-Type: application/toml"
                ));
            }
            out.push_str("\r\n\r\n");
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str("------b0undary--\r\n");
        out.into_bytes()
    }

    #[test]
    fn both_encodings_give_the_same_fields() {
        let expected = vec![
            ("csrf".to_owned(), "t0k".to_owned()),
            (
                "upload".to_owned(),
                "[roles.a]\r\nresources = []\n".to_owned(),
            ),
        ];
        let multi = body(&[
            ("csrf", None, "t0k"),
            ("upload", Some("p.toml"), "[roles.a]\r\nresources = []\n"),
        ]);
        assert_eq!(fields(Some(CT), &multi), Ok(expected.clone()));
        let quoted = "multipart/form-data; charset=utf-8; boundary=\"----b0undary\"";
        assert_eq!(fields(Some(quoted), &multi), Ok(expected.clone()));
        let url = b"csrf=t0k&upload=%5Broles.a%5D%0D%0Aresources+%3D+%5B%5D%0A";
        assert_eq!(
            fields(Some("application/x-www-form-urlencoded"), url),
            Ok(expected.clone())
        );
        assert_eq!(fields(None, url), Ok(expected));
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let good = body(&[("csrf", None, "t")]);
        for (ct, body, expected) in [
            ("text/plain", good.clone(), "not sent as"),
            ("multipart/form-data", good.clone(), "without a boundary"),
            (CT, b"junk".to_vec(), "does not start"),
            (CT, b"------b0undary\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end".to_vec(), "no end"),
            (CT, b"------b0undary\r\nX: y\r\n\r\nv\r\n------b0undary--".to_vec(), "no form-data name"),
            (CT, b"------b0undary\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\r\n------b0undary--".to_vec(), "not UTF-8"),
        ] {
            let e = fields(Some(ct), &body).expect_err(ct);
            assert!(e.contains(expected), "{ct}: {e}");
        }
        let many: Vec<_> = (0..40).map(|_| ("a", None, "b")).collect();
        assert!(
            fields(Some(CT), &body(&many))
                .expect_err("many")
                .contains("more than")
        );
        let long = "n".repeat(65);
        assert!(
            fields(Some(CT), &body(&[(&long, None, "v")]))
                .expect_err("long")
                .contains("longer")
        );
    }
}
