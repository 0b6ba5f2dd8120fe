//! Decompression bombs are refused without allocating their pixels: this test binary
//! counts every heap allocation and checks the peak while bombs are decoded.
//! (Its own binary, with a single test, so no other test's allocations interfere.)

#![allow(unsafe_code)] // a counting global allocator is the point of this binary

#[path = "intake/support.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use dupify_core::ErrorCode;
use dupify_images::{decode, DecodeTarget, IntakeLimits};
use support::*;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn bombs_are_refused_before_their_pixels_are_allocated() {
    let png = encode(&photo(8, 8), image::ImageFormat::Png);
    let jpeg = encode(&photo(16, 16), image::ImageFormat::Jpeg);
    let gif = encode(&photo(8, 8), image::ImageFormat::Gif);
    let webp = encode(&photo(8, 8), image::ImageFormat::WebP);
    let bombs = [
        ("png 20000x20000", png_claiming(&png, 20_000, 20_000)),
        ("jpeg 65000x65000", jpeg_claiming(&jpeg, 65_000, 65_000)),
        ("gif 65535x65535", gif_claiming(&gif, 65_535, 65_535)),
        (
            "webp 16000x16000",
            webp_lossless_claiming(&webp, 16_000, 16_000),
        ),
    ];
    let limits = IntakeLimits::default();
    for (what, bomb) in &bombs {
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        for target in [DecodeTarget::Full, DecodeTarget::AtLeast(512)] {
            let e = decode(bomb, &limits, target).expect_err(what);
            assert_eq!(e.code, ErrorCode::ImageTooLarge, "{what}: {e}");
        }
        let extra = PEAK.load(Ordering::Relaxed) - base;
        // The smallest bomb would need 1 GB of RGBA; a decoder's header parsing and
        // scratch tables stay far below 16 MB.
        assert!(extra < 16 << 20, "{what}: peak {extra} bytes");
    }
    // Control: the counter does see a real decode's buffers (2100x2100 RGBA = 17.6 MB).
    let gray = image::GrayImage::from_pixel(2100, 2100, image::Luma([90]));
    let real = encode_dyn(
        &image::DynamicImage::ImageLuma8(gray),
        image::ImageFormat::Png,
    );
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let d = decode(&real, &limits, DecodeTarget::Full).unwrap();
    assert_eq!(d.image.dimensions(), (2100, 2100));
    let extra = PEAK.load(Ordering::Relaxed) - base;
    assert!(
        extra > 16 << 20,
        "control decode peaked at only {extra} bytes"
    );
}
