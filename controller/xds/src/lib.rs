//! Delivery to Envoy: the module server and the xDS server.
