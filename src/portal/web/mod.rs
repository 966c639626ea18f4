//! The web terminal: one HTML page, its script and its style sheet, embedded in the binary and
//! served from the portal itself (nothing from a CDN). The page sends each line
//! with `POST /shell` (a custom header, so a cross-site page cannot forge it without a CORS
//! preflight we never grant), uploads files from a picker or by drag and drop, and shows the
//! NDJSON stream as it arrives.

use rouille::Response;

const FILES: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("app.css")),
];

/// One embedded file, or 404.
pub fn page(name: &str) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, text)) => Response::from_data(*content_type, text.as_bytes())
            .with_unique_header(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            )
            .with_unique_header("X-Content-Type-Options", "nosniff"),
        None => Response::empty_404(),
    }
}
