//! QR codes, rendered once for every channel that answers one: `GET /v1/orders/{id}/qr.svg`
//! and `.png`, and the simulators' cashier pages. What is encoded is what the payer's app
//! must scan: the provider's `code_url`, or for an EMVCo QR (PayNow, DuitNow, PromptPay)
//! the EMVCo payload itself, which banking apps read directly.

use qrcode::render::svg;
use qrcode::{Color, EcLevel, QrCode};

use crate::domain::PayAction;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("cannot be encoded as a QR code: {0}")]
    TooLong(String),
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// The text a pay action's QR code carries, if it is a QR code at all.
pub fn content_of(action: &PayAction) -> Option<&str> {
    match action {
        PayAction::QrCode { code_url } => Some(code_url),
        PayAction::EmvQrCode { emv_payload, .. } => Some(emv_payload),
        _ => None,
    }
}

fn code(content: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(content.as_bytes(), EcLevel::M)
        .map_err(|e| QrError::TooLong(e.to_string()))
}

/// An SVG of at least 256×256 with the quiet zone scanners need.
pub fn svg(content: &str) -> Result<String, QrError> {
    Ok(code(content)?
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// Pixels per module and the quiet zone (in modules) the PNG is drawn with.
const SCALE: usize = 8;
const QUIET: usize = 4;

/// An 8-bit greyscale PNG, `SCALE` pixels per module with a 4-module quiet zone.
pub fn png(content: &str) -> Result<Vec<u8>, QrError> {
    let qr = code(content)?;
    let n = qr.width();
    let colors = qr.to_colors();
    let side = (n + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != Color::Dark {
            continue;
        }
        let (mx, my) = (i % n + QUIET, i / n + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| QrError::Png(e.to_string()))?;
        w.write_image_data(&pixels)
            .map_err(|e| QrError::Png(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_is_a_png_of_the_qr_and_svg_an_svg() {
        let content = "weixin://wxpay/bizpayurl?pr=abc123";
        let png = png(content).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Decode it again: square, greyscale, and its modules are the QR's own.
        let dec = png::Decoder::new(std::io::Cursor::new(&png));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!(info.width, info.height);
        let qr = code(content).unwrap();
        let side = info.width as usize;
        assert_eq!(side, (qr.width() + 2 * QUIET) * SCALE);
        let at =
            |mx: usize, my: usize| buf[(my * SCALE + SCALE / 2) * side + mx * SCALE + SCALE / 2];
        let colors = qr.to_colors();
        for (i, c) in colors.iter().enumerate() {
            let px = at(i % qr.width() + QUIET, i / qr.width() + QUIET);
            assert_eq!(px == 0, *c == Color::Dark, "module {i}");
        }
        assert_eq!(at(0, 0), 255, "quiet zone");
        assert!(svg(content).unwrap().starts_with("<?xml"));
        assert!(matches!(png_too_long(), Err(QrError::TooLong(_))));
    }

    fn png_too_long() -> Result<Vec<u8>, QrError> {
        png(&"x".repeat(8000))
    }

    #[test]
    fn an_emv_qr_carries_its_payload() {
        let a = PayAction::EmvQrCode {
            code_url: "https://pay.example/checkout/1".into(),
            emv_payload: "000201010212".into(),
        };
        assert_eq!(content_of(&a), Some("000201010212"));
        let q = PayAction::QrCode {
            code_url: "weixin://x".into(),
        };
        assert_eq!(content_of(&q), Some("weixin://x"));
        assert_eq!(content_of(&PayAction::Redirect { url: "u".into() }), None);
    }
}
