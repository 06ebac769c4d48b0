// The testing guide, as this crate's documentation: its code blocks are this crate's
// doctests, compiled with only the dependencies in Cargo.toml. Its links point into
// mka1-auth's documentation, where the guide is rendered (`mka1_auth::guide::testing`).
#![doc = include_str!("../../../docs/testing.md")]
#![allow(rustdoc::broken_intra_doc_links)]

// README's rust blocks, compiled and run the same way.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct Readme;
