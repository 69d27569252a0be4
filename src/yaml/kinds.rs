//! [`kinds!`](crate::kinds): a registry of kinds by name.

/// The kinds of a family and how to read each: one line per kind.
///
/// ```text
/// kinds! { CheckSpec => dyn Check:
///     "http" => http::HttpCheck,
///     "sql" => sql::SqlCheck,
/// }
/// ```
#[macro_export]
macro_rules! kinds {
    ($(#[$m:meta])* $registry:ident => $object:ty: $($name:literal => $ty:ty),+ $(,)?) => {
        $(#[$m])*
        pub struct $registry;

        impl $registry {
            /// Every registered kind, in registration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// Deserializes the struct of `kind` (one of [`Self::NAMES`]).
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                d: D,
            ) -> Result<std::sync::Arc<$object>, D::Error> {
                match kind {
                    $($name => {
                        let v: std::sync::Arc<$object> =
                            std::sync::Arc::new(<$ty as serde::Deserialize>::deserialize(d)?);
                        Ok(v)
                    })+
                    other => Err(<D::Error as serde::de::Error>::custom(format!("unknown kind `{other}`"))),
                }
            }
        }
    };
}
