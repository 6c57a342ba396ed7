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
            // What export writes must read back as the same bindings.
            let written = b24bind::manifest::write_manifest(&manifest.bindings, "fuzz");
            let again = Manifest::parse("written.toml", &written, &LoadOptions::default())
                .unwrap_or_else(|d| panic!("export wrote an invalid manifest:\n{}\n{written}", d.render(false)));
            let keys = |m: &Manifest| {
                m.bindings
                    .iter()
                    .map(|b| (b.key.clone(), b.options.clone(), b.auth_connector.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(keys(&manifest), keys(&again), "{written}");
        }
        Err(diagnostics) => {
            assert!(diagnostics.has_errors());
            let _ = diagnostics.render(true);
        }
    }
});
