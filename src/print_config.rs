//! `parley print-config`: the effective configuration (defaults, then the
//! file, then `PARLEY_*`, then flags) as TOML a config file would accept,
//! with secrets redacted so the output can be pasted into a ticket.
//!
//! What counts as a secret is decided by name, so keys added later are
//! covered without touching this file: any key whose name contains
//! "secret", "key" or "password", and the password inside the Redis URL.
//!
//! Settings whose 0 means "size by the machine" (`reactors`,
//! `auth_workers`) are printed as set, followed by a comment saying what
//! they come to here, so the output stays portable to another machine.

use crate::config::{available_cores, Config};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";

const SECRET_WORDS: [&str; 3] = ["secret", "key", "password"];

/// The configuration as TOML, secrets redacted.
pub fn to_toml(config: &Config) -> Result<String, String> {
    let mut table = toml::Table::try_from(config).map_err(|e| e.to_string())?;
    for (key, value) in table.iter_mut() {
        // Only strings hold secrets; `password_iterations` is a number.
        let secret_string = matches!(value, toml::Value::String(_)) && !is_empty(value);
        if is_secret_key(key) && secret_string {
            *value = toml::Value::String(REDACTED.into());
        } else if let toml::Value::String(s) = value {
            if s.contains("://") {
                *s = redact_url(s);
            }
        }
    }
    let mut text = toml::to_string(&table).map_err(|e| e.to_string())?;
    text.push_str(&machine_sized(config));
    Ok(text)
}

/// A comment line with what each 0 ("size by the machine") comes to here;
/// empty when every such setting is explicit.
fn machine_sized(config: &Config) -> String {
    let mut sized = Vec::new();
    if config.reactors == 0 {
        sized.push(format!("reactors = 0 starts {}", config.reactor_count()));
    }
    if config.auth_workers == 0 {
        let workers = config.auth_worker_count();
        sized.push(format!("auth_workers = 0 starts {workers}"));
    }
    if sized.is_empty() {
        return String::new();
    }
    let cores = available_cores();
    format!(
        "\n# On this machine ({cores} cores): {}.\n",
        sized.join(", ")
    )
}

/// Whether a key's name says its value is a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

fn is_empty(value: &toml::Value) -> bool {
    matches!(value, toml::Value::String(s) if s.is_empty())
}

/// A URL with the password of its `user:password@` part replaced.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let (userinfo, host) = authority.split_at(at);
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_string(), // redis://TOKEN@host: all secret
    };
    format!("{scheme}{user}{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_only() {
        let cases = [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            (
                "redis://:hunter2@db:6379/0",
                "redis://:<redacted>@db:6379/0",
            ),
            (
                "redis://app:p@ss@db:6379/0",
                "redis://app:<redacted>@db:6379/0",
            ),
            ("redis://tok@db/1", "redis://<redacted>@db/1"),
            ("not a url", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn secret_names() {
        for k in ["signing_key", "jwt_secret", "admin_password", "API_KEY"] {
            assert!(is_secret_key(k), "{k}");
        }
        assert!(!is_secret_key("max_text_bytes"));
    }

    #[test]
    fn machine_sized_settings_say_what_they_come_to() {
        let text = to_toml(&Config::default()).unwrap();
        let workers = crate::config::auth_workers_for(available_cores());
        let note = format!("auth_workers = 0 starts {workers}");
        assert!(text.contains(&note), "{text}");
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(table["auth_workers"].as_integer(), Some(0));

        let explicit = Config {
            reactors: 2,
            auth_workers: 1,
            ..Config::default()
        };
        assert!(!to_toml(&explicit).unwrap().contains("# On this machine"));
    }

    #[test]
    fn output_is_a_valid_config_file() {
        let config = Config {
            redis: "redis://u:pw@h:1/0".into(),
            ..Config::default()
        };
        let text = to_toml(&config).unwrap();
        assert!(!text.contains("pw@"), "{text}");
        assert!(text.contains("redis = \"redis://u:<redacted>@h:1/0\""));
        let back: crate::config::FileSettings = toml::from_str(&text).unwrap();
        assert_eq!(back.max_text_bytes, Some(config.max_text_bytes));
    }
}
