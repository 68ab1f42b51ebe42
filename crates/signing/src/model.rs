//! The kinds and states of the signing context, as enums: a new value makes the compiler list every
//! `match` to update. Each is stored in SQL and sent in JSON as the same text as before (`as_str`,
//! `FromStr`, serde), so neither the schema nor the API changes. There is deliberately no comparison
//! with a string: every use names a variant, so the compiler finds them all.

use medsign_store::{Error, Result};

/// An enum stored and sent as text.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in SQL and sent in JSON.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(Error::Invalid(format!(
                        "{} 须为 {} / {} must be {}, got '{other}'",
                        stringify!($name),
                        Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(" | "),
                        stringify!($name),
                        Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(" | "),
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

    };
}

/// Read a stored text column as one of these enums; an unknown value is a corrupt row (500).
pub(crate) fn column<T: std::str::FromStr>(column: &str, text: String) -> Result<T> {
    text.parse().map_err(|_| Error::internal(format!("stored {column} '{text}' is not a known value")))
}

text_enum! {
    /// What a flow signs, and so its format ([`crate::flows::DocumentFormat`]).
    FlowKind {
        /// bytes, text or JSON, signed as one CMS SignedData (RFC 5652) with every signer
        Data = "data",
        /// a PDF, one PAdES incremental update per signer
        File = "file",
    }
}

text_enum! {
    /// Where a flow stands.
    FlowState {
        /// created, nobody has signed yet (not stored today: a flow starts `signing`)
        Pending = "pending",
        /// signers are signing
        Signing = "signing",
        /// every signer signed
        Completed = "completed",
        /// revoked by the app or an admin
        Revoked = "revoked",
        /// not finished before `expires_at`
        Expired = "expired",
        /// a signer could not sign
        Failed = "failed",
    }
}

impl FlowState {
    /// No further change will come.
    pub fn is_final(self) -> bool {
        !matches!(self, FlowState::Pending | FlowState::Signing)
    }
}

text_enum! {
    /// Who a signer is.
    SignerKind {
        /// a staff member (their certificate)
        Staff = "staff",
        /// the hospital's or a department's seal
        Seal = "seal",
    }
}

text_enum! {
    /// How a signer signs.
    SignerMode {
        /// on the server: server custody, a seal, or the doctor's key under a session grant
        Auto = "auto",
        /// on the phone, after scanning the flow's QR ticket
        Scan = "scan",
    }
}

text_enum! {
    /// Where a signer stands.
    SignerState {
        /// not signed yet
        Pending = "pending",
        /// signed
        Signed = "signed",
        /// could not sign
        Failed = "failed",
    }
}

text_enum! {
    /// How the key that made a signature was held.
    Custody {
        /// by the server, under the hospital's authorization
        Server = "server",
        /// split between the phone and the server (the phone signed)
        TwoParty = "two-party",
        /// split, the phone's half run under the doctor's session grant
        Grant = "grant",
    }
}

text_enum! {
    /// When a flow's signatures get their timestamps.
    TimestampMode {
        /// before anything is released; a TSA that cannot issue fails the flow
        Required = "required",
        /// released at once, stamped when the TSA can (data flows only)
        Later = "later",
    }
}

text_enum! {
    /// How much a PDF flow's result carries for long-term validation (PAdES baseline levels,
    /// ETSI EN 319 142-1); the default is B-T, what every PDF flow produced before issue #16.
    #[derive(Default)]
    PadesLevel {
        /// signature timestamps
        #[default]
        BT = "B-T",
        /// plus certificates, OCSP answers and CRLs in the document's DSS
        BLt = "B-LT",
        /// plus a document timestamp, renewed by archive timestamps
        BLta = "B-LTA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_json_and_sql_are_the_old_strings() {
        for (v, t) in [(Custody::TwoParty, "two-party"), (Custody::Server, "server"), (Custody::Grant, "grant")] {
            assert_eq!(v.as_str(), t);
            assert_eq!(serde_json::to_value(v).unwrap(), t);
            assert_eq!(t.parse::<Custody>().unwrap(), v);
        }
        for s in FlowState::ALL {
            assert_eq!(s.as_str().parse::<FlowState>().unwrap(), *s);
            assert_eq!(serde_json::from_value::<FlowState>(serde_json::json!(s.as_str())).unwrap(), *s);
        }
        assert_eq!(format!("{}", FlowState::Signing), "signing");
        let e = "ofd".parse::<FlowKind>().unwrap_err().to_string();
        assert!(e.contains("data | file") && e.contains("'ofd'"), "{e}");
        assert!(FlowState::Expired.is_final() && !FlowState::Signing.is_final());
    }
}
