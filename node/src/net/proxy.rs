//! The Service proxy: nftables rules from Services and EndpointSlices (stub:
//! the proxy work fills it in).
