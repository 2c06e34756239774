//! Native payments answer a `weixin://wxpay/bizpayurl?pr=…` code_url that the payer scans;
//! this renders it as a standalone SVG for the checkout page.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use crate::connectors::ConnectorError;

/// An SVG QR code of `code_url` (error correction M, quiet zone included).
pub fn code_url_svg(code_url: &str) -> Result<String, ConnectorError> {
    let code =
        QrCode::with_error_correction_level(code_url.as_bytes(), EcLevel::M).map_err(|e| {
            ConnectorError::InvalidRequest {
                param: "code_url",
                message: format!("cannot be encoded as a QR code: {e}"),
            }
        })?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_svg() {
        let svg = code_url_svg("weixin://wxpay/bizpayurl?pr=AbCdEf1").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.ends_with("</svg>"));
        assert!(code_url_svg(&"x".repeat(5000)).is_err());
    }
}
