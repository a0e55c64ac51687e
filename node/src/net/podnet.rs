//! Pod network namespaces, veths, addresses and the host's routes (stub: the
//! pod-network work fills it in).
