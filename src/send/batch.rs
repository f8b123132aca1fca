//! `/api/v2/batch` bodies: `{"batch":[...]}` framed around operations already encoded, and
//! the exact length of one, by which the dispatcher keeps each body under the 500 KB limit
//! (`track::MAX_BATCH_BYTES`).

/// `{"batch":[op,op,...]}` from operations already encoded.
pub fn batch_body<'a>(ops: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let mut body = Vec::with_capacity(batch_body_len(ops.clone().map(<[u8]>::len)));
    body.extend_from_slice(BATCH_OPEN);
    for (i, op) in ops.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(op);
    }
    body.extend_from_slice(BATCH_CLOSE);
    body
}

const BATCH_OPEN: &[u8] = br#"{"batch":["#;
const BATCH_CLOSE: &[u8] = b"]}";

/// The exact size of a batch body holding operations of these encoded sizes.
pub fn batch_body_len(sizes: impl Iterator<Item = usize>) -> usize {
    let (n, sum) = sizes.fold((0usize, 0usize), |(n, sum), len| (n + 1, sum + len));
    BATCH_OPEN.len() + BATCH_CLOSE.len() + sum + n.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_body_length_is_counted_exactly() {
        let ops: [&[u8]; 3] = [b"{\"a\":1}", b"{}", b"{\"b\":\"x\"}"];
        for n in 0..=ops.len() {
            let body = batch_body(ops[..n].iter().copied());
            assert_eq!(body.len(), batch_body_len(ops[..n].iter().map(|o| o.len())));
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["batch"].as_array().unwrap().len(), n);
        }
    }
}
