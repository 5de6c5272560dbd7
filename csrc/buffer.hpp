// Uninitialised arrays for the sorting kernels' O(N) working memory.
//
// A sort of 10^6 values through freshly allocated memory spends much of its
// time in page faults and TLB misses: scattering 4 MB of keys into 100 class
// segments took 2.2 ms through fresh 4 KiB pages and 0.56 ms through
// transparent huge pages on the development machine.  Arrays of 2 MiB and
// more are therefore 2 MiB-aligned and marked MADV_HUGEPAGE (Linux; a no-op
// where huge pages are disabled).  Nothing is zero-filled: every element is
// written before it is read.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace tfmia {

template <class T>
class Buffer {
public:
    Buffer() = default;

    explicit Buffer(std::size_t n) : size_(n) {
        constexpr std::size_t huge = std::size_t(2) << 20;
        const std::size_t bytes = n * sizeof(T);
        void* p = nullptr;
        if (bytes >= huge) {
            const std::size_t rounded = (bytes + huge - 1) / huge * huge;
            p = std::aligned_alloc(huge, rounded);
#ifdef __linux__
            if (p) madvise(p, rounded, MADV_HUGEPAGE);
#endif
        } else {
            p = std::malloc(bytes > 0 ? bytes : 1);
        }
        if (!p) throw std::bad_alloc();
        data_.reset(static_cast<T*>(p));
    }

    T* data() { return data_.get(); }
    const T* data() const { return data_.get(); }
    T& operator[](std::size_t i) { return data_.get()[i]; }
    const T& operator[](std::size_t i) const { return data_.get()[i]; }
    std::size_t size() const { return size_; }

private:
    struct Free {
        void operator()(T* p) const { std::free(p); }
    };
    std::unique_ptr<T, Free> data_;
    std::size_t size_ = 0;
};

}  // namespace tfmia
