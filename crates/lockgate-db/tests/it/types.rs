//! Value round trips through each engine and the cross-engine copy.
