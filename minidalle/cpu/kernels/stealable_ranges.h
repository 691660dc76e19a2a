// Items [0, count) split into one contiguous range per thread; the owner takes items from the
// front of its range, and a thread whose range is empty takes them from the back of another's.
//
// Why: a matmul call streams its weights from memory. Cut into many small parts handed out in
// turn, each thread jumped between parts and restarted its stream at every jump, and a 2 MB
// matrix took over 40% longer than its bytes at full bandwidth (bench/README.md). One range per
// thread keeps each stream whole; taking from the back keeps the threads finishing together
// when one of them started late or was preempted, without cutting into the owner's stream.
// Each range's bounds sit on a cache line of their own: sharing one line, every take by one
// thread evicted it from the other's core, which slowed the whole token loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace minidalle {

class StealableRanges {
 public:
  StealableRanges(int64_t item_count, int64_t range_count)
      : range_count_(range_count), bounds_(new Bounds[range_count]) {
    for (int64_t r = 0; r < range_count; ++r) {
      bounds_[r].word.store(Pack(item_count * r / range_count, item_count * (r + 1) / range_count));
    }
  }

  int64_t range_count() const { return range_count_; }

  // The next item at the front of `range`, or -1 once it is empty.
  int64_t TakeFront(int64_t range) { return Take(range, /*from_back=*/false); }

  // The last item of `range`, or -1 once it is empty.
  int64_t TakeBack(int64_t range) { return Take(range, /*from_back=*/true); }

 private:
  // front in the low half of one word, back in the high half: both move in one compare-exchange
  static uint64_t Pack(uint64_t front, uint64_t back) { return front | back << 32; }

  int64_t Take(int64_t range, bool from_back) {
    std::atomic<uint64_t>& bounds = bounds_[range].word;
    uint64_t seen = bounds.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t front = seen & 0xFFFFFFFFu, back = seen >> 32;
      if (front >= back) return -1;
      const uint64_t left = from_back ? Pack(front, back - 1) : Pack(front + 1, back);
      if (bounds.compare_exchange_weak(seen, left, std::memory_order_relaxed)) {
        return static_cast<int64_t>(from_back ? back - 1 : front);
      }
    }
  }

  struct alignas(64) Bounds {
    std::atomic<uint64_t> word;
  };

  const int64_t range_count_;
  std::unique_ptr<Bounds[]> bounds_;
};

}  // namespace minidalle
