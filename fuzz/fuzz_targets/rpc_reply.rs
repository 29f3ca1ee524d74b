#![no_main]
// What a client decodes from a server: replies, batch results, watch
// pages and the error carried in a status's details. Never panics.
use prost::Message;

use nokv_proto::pb;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(r) = pb::OpReply::decode(data) {
        if let Some(reply) = r.reply {
            if let Ok(decoded) = nokv_proto::decode_reply(reply) {
                let again = nokv_proto::decode_reply(nokv_proto::encode_reply(decoded.clone()))
                    .expect("an encoded reply decodes");
                assert_eq!(again, decoded);
            }
        }
    }
    if let Ok(b) = pb::BatchReply::decode(data) {
        for r in b.results.into_iter().take(64) {
            match r.result {
                Some(pb::op_result::Result::Ok(reply)) => {
                    let _ = nokv_proto::decode_reply(reply);
                }
                Some(pb::op_result::Result::Err(e)) => {
                    let _ = nokv_proto::decode_error(e).to_string();
                }
                None => {}
            }
        }
    }
    if let Ok(page) = pb::WatchPage::decode(data) {
        let _ = nokv_proto::decode_watch_page(page);
    }
    if let Ok(e) = pb::Error::decode(data) {
        let _ = nokv_proto::decode_error(e).to_string();
    }
    let status = tonic::Status::with_details(
        tonic::Code::FailedPrecondition,
        "fuzz",
        bytes::Bytes::copy_from_slice(data),
    );
    let _ = nokv_proto::error_from_status(&status).to_string();
});
