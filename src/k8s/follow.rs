//! Following containers' logs (`pods/log?follow=true`, as `kubectl logs -f`): the API server
//! streams each container's output until the container ends. Every pod's stream is read at once
//! on the client's one thread, lines handed out as they complete. Owns nothing else.

use std::pin::Pin;
use std::task::Poll;

use futures_io::AsyncBufRead;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

use super::{Kube, api_error};
use crate::error::Error;

/// A line longer than this is handed out in pieces (a container writing without newlines).
const MAX_LINE: usize = 64 * 1024;

/// One pod's open stream.
struct Stream {
    label: String,
    body: Pin<Box<dyn AsyncBufRead + Send>>,
    partial: Vec<u8>,
}

impl Kube {
    /// Follows the log of every pod of `pods` (`(label, pod name)`) from its last `tail` lines
    /// (all without): `each(label, line)` for every line as it arrives. Returns when every
    /// stream has ended, with the pods whose stream could not be opened or broke.
    pub fn follow_logs(
        &self,
        pods: &[(String, String)],
        tail: Option<i64>,
        mut each: impl FnMut(&str, &str),
    ) -> Vec<(String, Error)> {
        let api: Api<Pod> = Api::namespaced(self.client(), self.namespace());
        let params = LogParams { follow: true, tail_lines: tail, ..Default::default() };
        let mut failed = Vec::new();
        let mut streams = Vec::new();
        for (label, pod) in pods {
            let what = format!("follow the log of pod {}/{pod}", self.namespace());
            match self.block_on(api.log_stream(pod, &params)) {
                Ok(body) => streams.push(Some(Stream {
                    label: label.clone(),
                    body: Box::pin(body),
                    partial: Vec::new(),
                })),
                Err(e) => failed.push((label.clone(), api_error(what, e))),
            }
        }
        let mut emit = |label: &str, bytes: &[u8]| {
            each(label, String::from_utf8_lossy(bytes).trim_end_matches('\r'));
        };
        self.block_on(std::future::poll_fn(|cx| {
            for slot in streams.iter_mut() {
                let Some(stream) = slot else { continue };
                let ended = loop {
                    match stream.body.as_mut().poll_fill_buf(cx) {
                        Poll::Pending => break None,
                        Poll::Ready(Ok([])) => break Some(None),
                        Poll::Ready(Ok(buf)) => {
                            let n = buf.len();
                            stream.partial.extend_from_slice(buf);
                            stream.body.as_mut().consume(n);
                            while let Some(end) = stream.partial.iter().position(|b| *b == b'\n') {
                                emit(&stream.label, &stream.partial[..end]);
                                stream.partial.drain(..=end);
                            }
                            if stream.partial.len() > MAX_LINE {
                                emit(&stream.label, &stream.partial);
                                stream.partial.clear();
                            }
                        }
                        Poll::Ready(Err(e)) => break Some(Some(e)),
                    }
                };
                if let Some(err) = ended {
                    if !stream.partial.is_empty() {
                        emit(&stream.label, &stream.partial);
                    }
                    if let Some(source) = err {
                        let label = stream.label.clone();
                        failed.push((
                            label.clone(),
                            Error::io("read the log stream of", label, source),
                        ));
                    }
                    *slot = None;
                }
            }
            if streams.iter().all(Option::is_none) { Poll::Ready(()) } else { Poll::Pending }
        }));
        failed
    }
}
