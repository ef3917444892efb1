//! The browser client, compiled into the binary so a single file is the
//! whole deployment. Files live in `src/web/`; there is no build step.

/// One embedded file and how to serve it.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("web/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("web/app.js"),
    },
    Asset {
        path: "/conn.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("web/conn.js"),
    },
    Asset {
        path: "/chat.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("web/chat.js"),
    },
    Asset {
        path: "/view.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("web/view.js"),
    },
    Asset {
        path: "/state.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("web/state.js"),
    },
    Asset {
        path: "/outbox.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("web/outbox.js"),
    },
    Asset {
        path: "/rooms.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("web/rooms.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("web/style.css"),
    },
];

/// The page may load only its own files and open sockets to its own origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
    connect-src 'self'; img-src 'self' data:; style-src 'self'; \
    script-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// Assets change only with the binary, so browsers revalidate rather than
/// cache blindly; `no-cache` still allows conditional reuse.
pub const CACHE_CONTROL: &str = "no-cache";

pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}
