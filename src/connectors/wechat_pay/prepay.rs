//! The prepay request of each method family, and the client-side parameters built from
//! WeChat's answer (signed with the merchant key, as WeChat Pay documents for JSAPI, APP and mini program payments).

use std::collections::BTreeMap;

use crate::connectors::ConnectorError;
use crate::domain::{Method, Order, PayAction};

use super::api::{AmountReq, H5Info, Payer, PrepayRequest, PrepayResponse, SceneInfo};
use super::sign::{app_sign, jsapi_pay_sign, nonce};
use super::{time, Party, WechatPayConnector};

impl WechatPayConnector {
    pub(super) fn build_prepay(&self, order: &Order) -> (String, PrepayRequest) {
        let spec = &order.spec;
        let appid = self.appid_for(spec.method).to_string();
        let mut req = PrepayRequest {
            description: spec.subject.clone(),
            out_trade_no: order.id.provider_ref().to_string(),
            time_expire: Some(time::format_cst(spec.expires_at)),
            notify_url: self.env.callback_url.clone(),
            amount: AmountReq {
                total: spec.amount.minor(),
                currency: Some("CNY".into()),
            },
            ..Default::default()
        };
        let openid = spec.payer.openid.clone();
        let partner = match self.party(order) {
            Party::Direct => {
                req.appid = Some(appid);
                req.mchid = Some(self.cfg.s.mchid.clone());
                req.payer = openid.map(|o| Payer {
                    openid: Some(o),
                    ..Default::default()
                });
                false
            }
            Party::Partner(sub) => {
                let sub_appid = sub.appid_for(spec.method).map(str::to_string);
                req.sp_appid = Some(appid);
                req.sp_mchid = Some(self.cfg.s.mchid.clone());
                req.sub_mchid = Some(sub.sub_mchid.clone());
                // An openid belongs to one appid: the sub-merchant's when it has one.
                req.payer = openid.map(|o| match sub_appid {
                    Some(_) => Payer {
                        sub_openid: Some(o),
                        ..Default::default()
                    },
                    None => Payer {
                        sp_openid: Some(o),
                        ..Default::default()
                    },
                });
                req.sub_appid = sub_appid;
                true
            }
        };
        let kind = match spec.method {
            Method::Jsapi | Method::MiniProgram => "jsapi",
            Method::App => {
                req.payer = None;
                "app"
            }
            Method::H5 => {
                req.payer = None;
                req.scene_info = Some(SceneInfo {
                    payer_client_ip: spec.payer.ip.clone(),
                    device_id: None,
                    h5_info: Some(H5Info {
                        kind: self.cfg.s.h5_type.clone(),
                        app_name: self.cfg.s.h5_app_name.clone(),
                        app_url: self.cfg.s.h5_app_url.clone(),
                    }),
                });
                "h5"
            }
            // `barcode` never gets here: `validate` refuses it.
            Method::NativeQr | Method::PcWeb | Method::Barcode => {
                req.payer = None;
                "native"
            }
        };
        let path = if partner {
            format!("/v3/pay/partner/transactions/{kind}")
        } else {
            format!("/v3/pay/transactions/{kind}")
        };
        (path, req)
    }

    /// The client-side parameters, signed with the merchant key, as WeChat Pay documents for each client.
    pub(super) fn pay_action(
        &self,
        order: &Order,
        answer: PrepayResponse,
    ) -> Result<PayAction, ConnectorError> {
        let missing = |f: &str| ConnectorError::Protocol(format!("prepay answer without {f}"));
        let ts = time::now_secs().to_string();
        let nonce_str = nonce();
        let signer = &self.cfg.signer;
        let (client_appid, partner_id) = match self.party(order) {
            Party::Direct => (
                self.appid_for(order.spec.method).to_string(),
                self.cfg.s.mchid.clone(),
            ),
            Party::Partner(sub) => (
                sub.appid_for(order.spec.method)
                    .unwrap_or_else(|| self.appid_for(order.spec.method))
                    .to_string(),
                sub.sub_mchid.clone(),
            ),
        };
        Ok(match order.spec.method {
            Method::Jsapi | Method::MiniProgram => {
                let prepay_id = answer.prepay_id.ok_or_else(|| missing("prepay_id"))?;
                let package = format!("prepay_id={prepay_id}");
                let pay_sign = jsapi_pay_sign(signer, &client_appid, &ts, &nonce_str, &package);
                PayAction::MiniProgram {
                    params: BTreeMap::from([
                        ("appId".to_string(), client_appid),
                        ("timeStamp".to_string(), ts),
                        ("nonceStr".to_string(), nonce_str),
                        ("package".to_string(), package),
                        ("signType".to_string(), "RSA".to_string()),
                        ("paySign".to_string(), pay_sign),
                    ]),
                }
            }
            Method::App => {
                let prepay_id = answer.prepay_id.ok_or_else(|| missing("prepay_id"))?;
                let sign = app_sign(signer, &client_appid, &ts, &nonce_str, &prepay_id);
                PayAction::SdkParams {
                    params: BTreeMap::from([
                        ("appid".to_string(), client_appid),
                        ("partnerid".to_string(), partner_id),
                        ("prepayid".to_string(), prepay_id),
                        ("package".to_string(), "Sign=WXPay".to_string()),
                        ("noncestr".to_string(), nonce_str),
                        ("timestamp".to_string(), ts),
                        ("sign".to_string(), sign),
                    ]),
                }
            }
            Method::H5 => {
                let mut url = answer.h5_url.ok_or_else(|| missing("h5_url"))?;
                // WeChat sends the payer back here after the cashier page.
                if let Some(ret) = &order.spec.return_url {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    let enc: String =
                        url::form_urlencoded::byte_serialize(ret.as_bytes()).collect();
                    url = format!("{url}{sep}redirect_url={enc}");
                }
                PayAction::Redirect { url }
            }
            Method::NativeQr | Method::PcWeb | Method::Barcode => PayAction::QrCode {
                code_url: answer.code_url.ok_or_else(|| missing("code_url"))?,
            },
        })
    }
}
