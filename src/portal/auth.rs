//! Application credentials: the access token, the refresh grant and the auth file they live in.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::secret::Secret;

/// An auth file: the `auth` block a portal sends to an app's install handler, saved as JSON
/// (`access_token`, `refresh_token`, and optionally `client_endpoint` / `domain`). A file that
/// wraps it as `{"auth": {…}}` is read too. Fields we do not know are kept when we write back.
#[derive(Debug)]
pub struct AuthFile {
    path: PathBuf,
    doc: Map<String, Value>,
    nested: bool,
}

impl AuthFile {
    pub fn load(path: &Path) -> Result<AuthFile, String> {
        let text = fs::read_to_string(path)
            .map_err(|e| format!("cannot read the auth file {}: {e}", path.display()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            // serde_json's message names only a position, never the content, so no token leaks.
            format!(
                "the auth file {} is not valid JSON ({e}); it should hold the portal's auth block: \
                 {{\"access_token\": …, \"refresh_token\": …, \"client_endpoint\": …}}",
                path.display()
            )
        })?;
        let Value::Object(mut doc) = value else {
            return Err(format!(
                "the auth file {} must hold a JSON object with access_token and refresh_token",
                path.display()
            ));
        };
        let nested = matches!(doc.get("auth"), Some(Value::Object(_)));
        if nested && let Some(Value::Object(inner)) = doc.remove("auth") {
            doc = inner;
        }
        let file = AuthFile {
            path: path.to_owned(),
            doc,
            nested,
        };
        if file.access_token().is_none() {
            return Err(format!(
                "the auth file {} has no access_token",
                path.display()
            ));
        }
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn string(&self, key: &str) -> Option<String> {
        match self.doc.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }

    pub fn access_token(&self) -> Option<Secret> {
        self.string("access_token").map(Secret::new)
    }

    pub fn refresh_token(&self) -> Option<Secret> {
        self.string("refresh_token").map(Secret::new)
    }

    /// The portal the tokens belong to: `client_endpoint` (`https://x.bitrix24.ru/rest/`), else
    /// `domain`. The refresh answer's `domain` is the OAuth server, so `client_endpoint` wins.
    pub fn portal(&self) -> Option<String> {
        self.string("client_endpoint")
            .or_else(|| self.string("domain"))
    }

    /// Stores a rotated token pair, replacing the file atomically with mode 0600: the old
    /// refresh token is already dead, so a torn or lost write would lock the app out.
    pub fn save_tokens(
        &mut self,
        access: &Secret,
        refresh: &Secret,
        extra: &Map<String, Value>,
    ) -> Result<(), String> {
        self.doc.insert(
            "access_token".into(),
            Value::String(access.expose().to_owned()),
        );
        self.doc.insert(
            "refresh_token".into(),
            Value::String(refresh.expose().to_owned()),
        );
        for key in [
            "expires",
            "expires_in",
            "client_endpoint",
            "member_id",
            "scope",
        ] {
            if let Some(v) = extra.get(key) {
                self.doc.insert(key.to_owned(), v.clone());
            }
        }
        let doc = if self.nested {
            let mut outer = Map::new();
            outer.insert("auth".into(), Value::Object(self.doc.clone()));
            Value::Object(outer)
        } else {
            Value::Object(self.doc.clone())
        };
        let mut bytes = serde_json::to_vec_pretty(&doc)
            .map_err(|e| format!("cannot encode the auth file: {e}"))?;
        bytes.push(b'\n');
        write_private_atomically(&self.path, &bytes)
            .map_err(|e| format!("cannot write the auth file {}: {e}", self.path.display()))
    }
}

/// Writes `bytes` to a temporary file beside `path` (mode 0600 from the start, so the secret is
/// never readable by others even briefly), syncs it, and renames it over `path`. A crash at any
/// point leaves either the old file or the new one, never a mix.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "auth".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The mode given to open is filtered by the umask; set it explicitly as well.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Everything needed to renew an expired access token.
#[derive(Debug)]
pub struct Refresher {
    pub refresh_token: Secret,
    pub client_id: String,
    pub client_secret: Secret,
    /// The token endpoint, `https://oauth.bitrix.info/oauth/token/` in the cloud.
    pub oauth_url: String,
    /// Where the rotated pair is written before anything else happens.
    pub store: Option<AuthFile>,
}

/// The credentials a client calls the portal with.
#[derive(Debug)]
pub struct Credentials {
    pub access_token: Secret,
    /// None: an expired token ends the run with a message saying how to allow refreshing.
    pub refresh: Option<Refresher>,
    /// Why refreshing is not possible, for that message (set by whoever built the credentials).
    pub refresh_unavailable: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_keeps_other_fields_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        fs::write(
            &path,
            r#"{"auth":{"access_token":"a1","refresh_token":"r1","client_endpoint":"https://x.bitrix24.ru/rest/","member_id":"m"}}"#,
        )
        .unwrap();
        let mut file = AuthFile::load(&path).unwrap();
        assert_eq!(file.access_token().unwrap().expose(), "a1");
        assert_eq!(
            file.portal().as_deref(),
            Some("https://x.bitrix24.ru/rest/")
        );
        file.save_tokens(&Secret::new("a2"), &Secret::new("r2"), &Map::new())
            .unwrap();
        let saved: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(saved["auth"]["access_token"], "a2");
        assert_eq!(saved["auth"]["refresh_token"], "r2");
        assert_eq!(saved["auth"]["member_id"], "m");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn bad_files_are_clear_errors_without_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        fs::write(&path, "{\"access_token\": \"sekrit").unwrap();
        let err = AuthFile::load(&path).unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        assert!(!err.contains("sekrit"));
        fs::write(&path, "{\"refresh_token\": \"r\"}").unwrap();
        assert!(
            AuthFile::load(&path)
                .unwrap_err()
                .contains("no access_token")
        );
        assert!(
            AuthFile::load(&dir.path().join("missing"))
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
