//! Fuzz target: manifest parsing, validation and diagnostics rendering never panic on any bytes.
#![no_main]

use b24bind::manifest::{LoadOptions, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    let options = LoadOptions {
        vars: [("APP_URL".to_owned(), "https://h.example.com".to_owned())].into(),
        ..LoadOptions::default()
    };
    match Manifest::parse("fuzz.toml", &source, &options) {
        Ok(manifest) => {
            let _ = manifest.render_warnings(true);
            let _ = b24bind::manifest::write_manifest(&manifest.bindings, "fuzz");
        }
        Err(diagnostics) => {
            assert!(diagnostics.has_errors());
            let _ = diagnostics.render(true);
        }
    }
});
