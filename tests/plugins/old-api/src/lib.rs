//! A plugin as an older release of `zibrato-backend-api` would have built it:
//! an `abi_stable` root module with a different layout, stamped with API
//! version 0.2.0. The worker must refuse it, naming the file and the versions,
//! before calling anything in it.

// abi_stable's macros expand to impls inside generated constants.
#![allow(non_local_definitions)]

use abi_stable::{
    declare_root_module_statics, export_root_module,
    library::RootModule,
    prefix_type::PrefixTypeTrait,
    sabi_types::VersionStrings,
    std_types::{RStr, RString},
    StableAbi,
};

/// The old root module: one operation, taking text.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = OldModuleRef)))]
#[sabi(missing_field(panic))]
pub struct OldModule {
    /// The backend's name.
    pub name: RStr<'static>,
    /// Posts one message.
    #[sabi(last_prefix_field)]
    pub post: extern "C" fn(RStr<'_>) -> RString,
}

impl RootModule for OldModuleRef {
    declare_root_module_statics! {OldModuleRef}
    const BASE_NAME: &'static str = "zibrato_backend";
    const NAME: &'static str = "zibrato backend";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.2.0");
}

extern "C" fn post(message: RStr<'_>) -> RString {
    message.as_str().into()
}

/// The exported module.
#[export_root_module]
pub fn old_module() -> OldModuleRef {
    OldModule {
        name: RStr::from_str("oldapi"),
        post,
    }
    .leak_into_prefix()
}
