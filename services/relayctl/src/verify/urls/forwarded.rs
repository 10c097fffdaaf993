//! What a proxy's headers (`Forwarded`, `X-Forwarded-Proto`, `-Host`, `-Port`, `-Prefix`) say
//! about the URL the sender called.

use super::{Origin, default_port};
use crate::verify::capture::Capture;

/// The origin the proxy headers describe, each header explained in `lines`; `None` without any.
pub(super) fn forwarded_origin(
    capture: &Capture,
    base: &Origin,
    lines: &mut Vec<String>,
) -> Option<Origin> {
    let mut proto = None;
    let mut host = None;
    if let Some(value) = capture.header("forwarded") {
        // RFC 7239: the first element is the one the outermost proxy added.
        let first = value.split(',').next().unwrap_or_default();
        for pair in first.split(';') {
            if let Some((k, v)) = pair.split_once('=') {
                let v = v.trim().trim_matches('"').to_owned();
                match k.trim().to_ascii_lowercase().as_str() {
                    "proto" => proto = Some(v.to_ascii_lowercase()),
                    "host" => host = Some(v),
                    _ => {}
                }
            }
        }
        lines.push(format!(
            "Forwarded: {value}: the client's request as the proxy saw it"
        ));
    }
    let first_of = |name: &str| {
        capture
            .header(name)
            .map(|v| v.split(',').next().unwrap_or_default().trim().to_owned())
    };
    if let Some(p) = first_of("x-forwarded-proto") {
        lines.push(format!(
            "X-Forwarded-Proto: {p}: the client called over {p}"
        ));
        proto = proto.or(Some(p.to_ascii_lowercase()));
    }
    if let Some(h) = first_of("x-forwarded-host") {
        lines.push(format!("X-Forwarded-Host: {h}: the client called host {h}"));
        host = host.or(Some(h));
    }
    let port = first_of("x-forwarded-port");
    if let Some(p) = &port {
        lines.push(format!(
            "X-Forwarded-Port: {p}: the client connected to port {p}"
        ));
    }
    let prefix = first_of("x-forwarded-prefix");
    if let Some(p) = &prefix {
        lines.push(format!(
            "X-Forwarded-Prefix: {p}: the proxy stripped {p} from the path"
        ));
    }
    if proto.is_none() && host.is_none() && port.is_none() && prefix.is_none() {
        return None;
    }
    let scheme = proto.unwrap_or_else(|| base.scheme.clone());
    let host = host
        .or_else(|| capture.header("host").map(str::to_owned))
        .unwrap_or_else(|| base.host.clone());
    let mut origin = Origin::parse(&format!("{scheme}://{host}"))?;
    if let Some(p) = port.filter(|p| Some(p.as_str()) != default_port(&scheme)) {
        origin.port = Some(p);
    }
    origin.prefix = prefix.unwrap_or_default().trim_end_matches('/').to_owned();
    Some(origin)
}
