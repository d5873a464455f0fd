//! A build shim that lets Portcullis compile Pingora without `cmake`.
//!
//! `pingora-core` asks `flate2` for its `zlib-ng` backend, which pulls the crates.io
//! `libz-ng-sys`, whose build script compiles zlib-ng with `cmake`. A machine with only the
//! Rust toolchain has no `cmake`, so the workspace root patches `libz-ng-sys` with this crate:
//! the same Rust API surface that `flate2` uses, forwarded to `libz-rs-sys` (zlib-rs, a
//! complete zlib implementation in Rust).
//!
//! Only what `flate2` calls is provided. The two `z_stream` types differ only in how the
//! allocator callbacks are typed (`fn` here, `Option<fn>` in zlib-rs); both are a non-null
//! function pointer at run time, and the compile-time assertions below pin size and alignment.
//! If a future `flate2` needs another symbol, compilation fails loudly rather than linking
//! something wrong.
#![allow(non_camel_case_types, non_snake_case)]

use core::ffi::{c_char, c_int, c_uint, c_ulong, c_void};
use libz_rs_sys as rs;

pub type uInt = c_uint;
pub type uLong = c_ulong;
pub type Bytef = u8;
pub type voidpf = *mut c_void;
pub type alloc_func = unsafe extern "C" fn(voidpf, uInt, uInt) -> voidpf;
pub type free_func = unsafe extern "C" fn(voidpf, voidpf);

/// Opaque compressor/decompressor state, owned by zlib-rs.
#[derive(Debug)]
pub enum internal_state {}

/// zlib's stream record, with the field names and types `flate2` expects from `libz-ng-sys`.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct z_stream {
    pub next_in: *mut Bytef,
    pub avail_in: uInt,
    pub total_in: uLong,
    pub next_out: *mut Bytef,
    pub avail_out: uInt,
    pub total_out: uLong,
    pub msg: *mut c_char,
    pub state: *mut internal_state,
    pub zalloc: alloc_func,
    pub zfree: free_func,
    pub opaque: voidpf,
    pub data_type: c_int,
    pub adler: uLong,
    pub reserved: uLong,
}
pub type z_streamp = *mut z_stream;

const _: () = assert!(size_of::<z_stream>() == size_of::<rs::z_stream>());
const _: () = assert!(align_of::<z_stream>() == align_of::<rs::z_stream>());
const _: () = assert!(size_of::<alloc_func>() == size_of::<Option<rs::alloc_func>>());

pub const Z_NO_FLUSH: c_int = rs::Z_NO_FLUSH;
pub const Z_PARTIAL_FLUSH: c_int = rs::Z_PARTIAL_FLUSH;
pub const Z_SYNC_FLUSH: c_int = rs::Z_SYNC_FLUSH;
pub const Z_FULL_FLUSH: c_int = rs::Z_FULL_FLUSH;
pub const Z_FINISH: c_int = rs::Z_FINISH;
pub const Z_BLOCK: c_int = rs::Z_BLOCK;
pub const Z_OK: c_int = rs::Z_OK;
pub const Z_STREAM_END: c_int = rs::Z_STREAM_END;
pub const Z_NEED_DICT: c_int = rs::Z_NEED_DICT;
pub const Z_STREAM_ERROR: c_int = rs::Z_STREAM_ERROR;
pub const Z_DATA_ERROR: c_int = rs::Z_DATA_ERROR;
pub const Z_MEM_ERROR: c_int = rs::Z_MEM_ERROR;
pub const Z_BUF_ERROR: c_int = rs::Z_BUF_ERROR;
pub const Z_DEFAULT_STRATEGY: c_int = rs::Z_DEFAULT_STRATEGY;
pub const Z_DEFLATED: c_int = rs::Z_DEFLATED;

/// Reinterprets the stream record as zlib-rs's; sound because the layouts are identical
/// (asserted above) and both allocator fields always hold non-null function pointers.
fn rs_stream(strm: z_streamp) -> *mut rs::z_stream {
    strm.cast()
}

/// # Safety
/// Same contract as zlib's `zlibVersion`.
pub unsafe extern "C" fn zlibVersion() -> *const c_char {
    rs::zlibVersion()
}

/// # Safety
/// Same contract as zlib's `deflateInit2_`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn deflateInit2_(
    strm: z_streamp,
    level: c_int,
    method: c_int,
    window_bits: c_int,
    mem_level: c_int,
    strategy: c_int,
    version: *const c_char,
    stream_size: c_int,
) -> c_int {
    // SAFETY: forwarded verbatim; see `rs_stream`.
    unsafe {
        rs::deflateInit2_(
            rs_stream(strm),
            level,
            method,
            window_bits,
            mem_level,
            strategy,
            version,
            stream_size,
        )
    }
}

/// # Safety
/// Same contract as zlib's `inflateInit2_`.
pub unsafe extern "C" fn inflateInit2_(
    strm: z_streamp,
    window_bits: c_int,
    version: *const c_char,
    stream_size: c_int,
) -> c_int {
    // SAFETY: forwarded verbatim; see `rs_stream`.
    unsafe { rs::inflateInit2_(rs_stream(strm), window_bits, version, stream_size) }
}

macro_rules! forward {
    ($( $name:ident ( $($arg:ident : $ty:ty),* ) ;)*) => {$(
        /// # Safety
        #[doc = concat!("Same contract as zlib's `", stringify!($name), "`.")]
        pub unsafe extern "C" fn $name(strm: z_streamp $(, $arg: $ty)*) -> c_int {
            // SAFETY: forwarded verbatim; see `rs_stream`.
            unsafe { rs::$name(rs_stream(strm) $(, $arg)*) }
        }
    )*};
}

forward! {
    deflate(flush: c_int);
    deflateEnd();
    deflateReset();
    deflateParams(level: c_int, strategy: c_int);
    deflateSetDictionary(dictionary: *const Bytef, len: uInt);
    inflate(flush: c_int);
    inflateEnd();
    inflateReset();
    inflateReset2(window_bits: c_int);
    inflateSetDictionary(dictionary: *const Bytef, len: uInt);
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn zalloc(_: voidpf, items: uInt, size: uInt) -> voidpf {
        let layout = std::alloc::Layout::from_size_align(items as usize * size as usize + 16, 16)
            .expect("layout");
        // SAFETY: non-zero size; the 16-byte header stores the size for `zfree`.
        unsafe {
            let p = std::alloc::alloc(layout);
            (p as *mut usize).write(layout.size());
            p.add(16).cast()
        }
    }

    unsafe extern "C" fn zfree(_: voidpf, p: voidpf) {
        // SAFETY: `p` came from `zalloc` above.
        unsafe {
            let base = (p as *mut u8).sub(16);
            let size = (base as *mut usize).read();
            std::alloc::dealloc(
                base,
                std::alloc::Layout::from_size_align_unchecked(size, 16),
            );
        }
    }

    fn stream() -> z_stream {
        z_stream {
            next_in: std::ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: std::ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: std::ptr::null_mut(),
            state: std::ptr::null_mut(),
            zalloc,
            zfree,
            opaque: std::ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        }
    }

    #[test]
    fn gzip_round_trip_through_the_shim() {
        let input: Vec<u8> = b"portcullis "
            .iter()
            .copied()
            .cycle()
            .take(10_000)
            .collect();
        let size = size_of::<z_stream>() as c_int;
        let mut packed = vec![0u8; 20_000];
        let mut unpacked = vec![0u8; 20_000];
        // SAFETY: buffers outlive the streams; sizes are passed exactly.
        unsafe {
            let mut d = stream();
            assert_eq!(
                deflateInit2_(
                    &mut d,
                    6,
                    Z_DEFLATED,
                    31,
                    8,
                    Z_DEFAULT_STRATEGY,
                    zlibVersion(),
                    size
                ),
                Z_OK
            );
            d.next_in = input.as_ptr() as *mut u8;
            d.avail_in = input.len() as uInt;
            d.next_out = packed.as_mut_ptr();
            d.avail_out = packed.len() as uInt;
            assert_eq!(deflate(&mut d, Z_FINISH), Z_STREAM_END);
            let packed_len = d.total_out as usize;
            assert!(
                packed_len < input.len() / 10,
                "repetitive input must compress"
            );
            assert_eq!(deflateEnd(&mut d), Z_OK);

            let mut i = stream();
            assert_eq!(inflateInit2_(&mut i, 31, zlibVersion(), size), Z_OK);
            i.next_in = packed.as_mut_ptr();
            i.avail_in = packed_len as uInt;
            i.next_out = unpacked.as_mut_ptr();
            i.avail_out = unpacked.len() as uInt;
            assert_eq!(inflate(&mut i, Z_FINISH), Z_STREAM_END);
            assert_eq!(&unpacked[..i.total_out as usize], &input[..]);
            assert_eq!(inflateEnd(&mut i), Z_OK);
        }
    }
}
