//! Content negotiation: what a client sends (JSON or YAML) and what it accepts
//! back (JSON, YAML, a `Table`, `PartialObjectMetadata`).

use ferry_api::object::Status;
use serde_json::Value;

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Plain JSON (the default).
    Json,
    /// YAML (`application/yaml`).
    Yaml,
    /// `as=Table;g=meta.k8s.io;v=v1` (kubectl get's server-side columns).
    Table,
    /// `as=PartialObjectMetadata` or `as=PartialObjectMetadataList`.
    Metadata,
}

/// Reads an `Accept` header: the first media range ferry can produce. Absent,
/// empty or `*/*` is JSON; nothing acceptable is 406, as Kubernetes answers.
pub fn negotiate(accept: Option<&str>) -> Result<Answer, Status> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(Answer::Json);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let mime = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut as_, mut g, mut v) = (None, None, None);
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                let val = val.trim().trim_matches('"');
                match k.trim() {
                    "as" => as_ = Some(val),
                    "g" => g = Some(val),
                    "v" => v = Some(val),
                    _ => {}
                }
            }
        }
        let json_like = matches!(mime.as_str(), "application/json" | "application/*" | "*/*");
        match as_ {
            None if json_like => return Ok(Answer::Json),
            None if mime == "application/yaml" => return Ok(Answer::Yaml),
            Some("Table")
                if json_like && g == Some("meta.k8s.io") && matches!(v, Some("v1" | "v1beta1")) =>
            {
                return Ok(Answer::Table)
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if json_like && g == Some("meta.k8s.io") && matches!(v, Some("v1" | "v1beta1")) =>
            {
                return Ok(Answer::Metadata)
            }
            // Protobuf, aggregated discovery (answered elsewhere) and anything else.
            _ => {}
        }
    }
    Err(Status::new(
        406,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: application/json, application/yaml, \
             application/json;as=Table;v=v1;g=meta.k8s.io (got {accept:?})"
        ),
    ))
}

/// A request body as JSON bytes: JSON passes through, YAML and Kubernetes
/// protobuf (what kubectl's typed clients send) are converted. Other types are
/// 415; a body that does not parse is 400, naming the problem.
pub fn body_json(content_type: Option<&str>, body: &[u8]) -> Result<Vec<u8>, Status> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let mime = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "application/apply-patch+yaml" => {
            let v: Value = serde_yaml::from_slice(body).map_err(|e| {
                Status::bad_request(format!("the body of the request is not valid YAML: {e}"))
            })?;
            Ok(serde_json::to_vec(&v).unwrap_or_default())
        }
        "application/json"
        | "application/merge-patch+json"
        | "application/json-patch+json"
        | "application/strategic-merge-patch+json"
        | "" => {
            // Checked here so the message names the body, not a field.
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                return Err(Status::bad_request(format!(
                    "the body of the request is not valid JSON: {e}"
                )));
            }
            Ok(body.to_vec())
        }
        ferry_api::protobuf::CONTENT_TYPE => {
            let v = ferry_api::protobuf::decode_object(body).map_err(|e| {
                Status::bad_request(format!(
                    "the body of the request is not a valid Kubernetes protobuf object: {e}"
                ))
            })?;
            Ok(serde_json::to_vec(&v).unwrap_or_default())
        }
        _ => Err(unsupported(&mime)),
    }
}

fn unsupported(mime: &str) -> Status {
    Status::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json, application/yaml (got {mime:?})"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_first_producible_type() {
        let cases: &[(Option<&str>, Result<Answer, u16>)] = &[
            (None, Ok(Answer::Json)),
            (Some(""), Ok(Answer::Json)),
            (Some("*/*"), Ok(Answer::Json)),
            (Some("application/json, */*"), Ok(Answer::Json)),
            (Some("application/yaml"), Ok(Answer::Yaml)),
            // kubectl get
            (
                Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"),
                Ok(Answer::Table),
            ),
            (
                Some("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"),
                Ok(Answer::Metadata),
            ),
            // client-go with protobuf preferred
            (
                Some("application/vnd.kubernetes.protobuf,application/json"),
                Ok(Answer::Json),
            ),
            (Some("application/vnd.kubernetes.protobuf"), Err(406)),
            (Some("text/html"), Err(406)),
        ];
        for (h, want) in cases {
            let got = negotiate(*h).map_err(|s| s.code);
            assert_eq!(&got, want, "{h:?}");
        }
    }

    #[test]
    fn bodies_are_json_or_yaml_and_bad_ones_are_named() {
        let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"1\"\n";
        let j = body_json(Some("application/yaml"), yaml).unwrap();
        let v: Value = serde_json::from_slice(&j).unwrap();
        assert_eq!(v["metadata"]["name"], "c");
        assert_eq!(v["data"]["a"], "1");
        let raw = br#"{"a":1}"#;
        assert_eq!(
            body_json(Some("application/json; charset=utf-8"), raw).unwrap(),
            raw
        );
        let e = body_json(Some("application/json"), b"{nope").unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = body_json(Some("application/yaml"), b"a: [").unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(body_json(Some("text/plain"), b"x").unwrap_err().code, 415);
        let e = body_json(Some("application/vnd.kubernetes.protobuf"), b"x").unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message.contains("not a valid Kubernetes protobuf object"),
            "{}",
            e.message
        );
        assert!(body_json(Some("text/plain"), b"").unwrap().is_empty());
    }
}
