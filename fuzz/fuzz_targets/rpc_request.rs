#![no_main]
// What a server decodes from the network: an OpRequest or a
// BatchRequest (protobuf) into MetaOps. Never panics; an accepted op
// encodes back to the same op.
use prost::Message;

use nokv_proto::pb;

fn check(op: pb::Op) {
    if let Ok(decoded) = nokv_proto::decode_op(op) {
        let again = nokv_proto::decode_op(nokv_proto::encode_op(decoded.clone()))
            .expect("an encoded op decodes");
        assert_eq!(again, decoded);
        let _ = decoded.name();
        let _ = decoded.is_read();
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(req) = pb::OpRequest::decode(data) {
        if let Some(op) = req.op {
            check(op);
        }
    }
    if let Ok(batch) = pb::BatchRequest::decode(data) {
        for op in batch.ops.into_iter().take(64) {
            check(op);
        }
    }
    if let Ok(req) = pb::WatchRequest::decode(data) {
        let _ = (req.from, req.prefix);
    }
});
