//! Rotating the cluster CA in steps (`ferry ca rotate`), with no downtime.
//!
//! The state is one store key, [`KEY`], replicated like any other: every
//! master reads it (and keeps a copy in its data dir for its next start),
//! and nodes learn from it through [`crate::proto::ApiRequest::ClusterTrust`].
//!
//! 1. `trust`: a new CA is made; every member trusts the old and the new, and
//!    certificates are still issued by the old.
//! 2. `reissue`: certificates are issued by the new CA; every master renews
//!    its own at once, every node through its renewal path.
//! 3. `drop`: once every master and node presents a new-CA certificate, the
//!    old CA is trusted no more.
//!
//! Each member reports what it trusts and which CA issued its certificate
//! under [`MEMBERS`]; a step that would cut a member off is refused, naming it.

use serde::{Deserialize, Serialize};

/// The store key of the rotation state.
pub const KEY: &str = "/ferry/ca";
/// The prefix of members' reports: `<MEMBERS>master-<id>`, `<MEMBERS>node-<name>`.
pub const MEMBERS: &str = "/ferry/ca-members/";

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// The new CA is trusted beside the old; the old still issues.
    Trust,
    /// The new CA issues; both are trusted.
    Reissue,
    /// The old CA is dropped: the new one alone is trusted and issues.
    Done,
}

impl Step {
    /// The step's name, as `--step` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Step::Trust => "trust",
            Step::Reissue => "reissue",
            Step::Done => "drop",
        }
    }
}

/// A CA certificate with its key (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaPair {
    /// Certificate.
    pub cert: String,
    /// Private key.
    pub key: String,
}

/// The rotation state stored under [`KEY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Where it stands.
    pub step: Step,
    /// The CA being retired (after `drop`, the one retired last).
    pub old: CaPair,
    /// The CA replacing it.
    pub new: CaPair,
}

impl Rotation {
    /// The CA issuing certificates now.
    pub fn signing(&self) -> &CaPair {
        match self.step {
            Step::Trust => &self.old,
            Step::Reissue | Step::Done => &self.new,
        }
    }

    /// The CAs trusted now, as one PEM bundle, the issuing CA first.
    pub fn trust(&self) -> String {
        match self.step {
            Step::Trust => format!("{}{}", nl(&self.old.cert), nl(&self.new.cert)),
            Step::Reissue => format!("{}{}", nl(&self.new.cert), nl(&self.old.cert)),
            Step::Done => nl(&self.new.cert),
        }
    }

    /// Encoded for the store.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializable")
    }

    /// Decoded from the store.
    pub fn decode(bytes: &[u8]) -> Result<Rotation, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("CA rotation state: {e}"))
    }
}

fn nl(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_string()
    } else {
        format!("{pem}\n")
    }
}

/// What a member reports under [`MEMBERS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberTls {
    /// SHA-256 (hex) of each CA it trusts.
    pub trusts: Vec<String>,
    /// SHA-256 (hex) of the CA that issued the certificate it presents
    /// (empty when none it knows of).
    pub issuer: String,
}

/// The step after `state` that `--step name` asks for, or why not.
pub fn next(state: Option<&Rotation>, name: &str) -> Result<Step, String> {
    let want = match name {
        "trust" => Step::Trust,
        "reissue" => Step::Reissue,
        "drop" => Step::Done,
        other => {
            return Err(format!(
                "unknown step {other:?}: the steps are trust, reissue and drop, in that order"
            ))
        }
    };
    let at = state.map(|s| s.step);
    let ok = matches!(
        (at, want),
        (None | Some(Step::Done), Step::Trust)
            | (Some(Step::Trust), Step::Reissue)
            | (Some(Step::Reissue), Step::Done)
    );
    if ok {
        return Ok(want);
    }
    let now = match at {
        None | Some(Step::Done) => "no rotation is under way".to_string(),
        Some(s) => format!("the rotation is at step {}", s.name()),
    };
    let then = match at {
        None | Some(Step::Done) => "trust",
        Some(Step::Trust) => "reissue",
        Some(Step::Reissue) => "drop",
    };
    Err(format!(
        "cannot {} now: {now}; the next step is {then}",
        want.name()
    ))
}

/// The members that `step` would cut off, each with why: for `reissue`,
/// those that do not trust the new CA yet; for `drop`, those whose
/// certificate is not the new CA's. `members` are (name, report if any).
pub fn laggards(
    step: Step,
    new_hash: &str,
    members: &[(String, Option<MemberTls>)],
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, report) in members {
        let Some(r) = report else {
            out.push(format!("{name} has not reported its certificates"));
            continue;
        };
        match step {
            Step::Reissue if !r.trusts.iter().any(|h| h == new_hash) => {
                out.push(format!("{name} does not trust the new CA yet"))
            }
            Step::Done if r.issuer != new_hash => {
                out.push(format!("{name} still presents a certificate of the old CA"))
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: &str) -> CaPair {
        CaPair {
            cert: format!("{n}-cert\n"),
            key: format!("{n}-key"),
        }
    }

    #[test]
    fn steps_go_in_order_and_every_other_order_is_refused_naming_the_next() {
        let mut r = Rotation {
            step: Step::Trust,
            old: pair("old"),
            new: pair("new"),
        };
        assert_eq!(next(None, "trust"), Ok(Step::Trust));
        let e = next(None, "drop").unwrap_err();
        assert!(
            e.contains("no rotation is under way") && e.contains("next step is trust"),
            "{e}"
        );
        assert!(next(None, "bogus").unwrap_err().contains("unknown step"));
        assert_eq!(r.signing(), &pair("old"));
        assert_eq!(r.trust(), "old-cert\nnew-cert\n");
        let e = next(Some(&r), "drop").unwrap_err();
        assert!(
            e.contains("at step trust") && e.contains("next step is reissue"),
            "{e}"
        );
        assert!(next(Some(&r), "trust").is_err());
        assert_eq!(next(Some(&r), "reissue"), Ok(Step::Reissue));
        r.step = Step::Reissue;
        assert_eq!(r.signing(), &pair("new"));
        assert_eq!(r.trust(), "new-cert\nold-cert\n");
        assert_eq!(next(Some(&r), "drop"), Ok(Step::Done));
        assert!(next(Some(&r), "reissue").is_err());
        r.step = Step::Done;
        assert_eq!(r.trust(), "new-cert\n");
        assert_eq!(next(Some(&r), "trust"), Ok(Step::Trust));
        assert_eq!(Rotation::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn laggards_are_named_with_why() {
        let report = |trusts: &[&str], issuer: &str| {
            Some(MemberTls {
                trusts: trusts.iter().map(|s| s.to_string()).collect(),
                issuer: issuer.into(),
            })
        };
        let members = vec![
            ("master 1".to_string(), report(&["o", "n"], "n")),
            ("master 2".to_string(), report(&["o", "n"], "o")),
            ("node n1".to_string(), report(&["o"], "o")),
            ("node n2".to_string(), None),
        ];
        assert_eq!(
            laggards(Step::Reissue, "n", &members),
            [
                "node n1 does not trust the new CA yet",
                "node n2 has not reported its certificates"
            ]
        );
        assert_eq!(
            laggards(Step::Done, "n", &members),
            [
                "master 2 still presents a certificate of the old CA",
                "node n1 still presents a certificate of the old CA",
                "node n2 has not reported its certificates"
            ]
        );
    }
}
