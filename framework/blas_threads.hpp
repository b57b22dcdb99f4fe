#pragma once
// The threads every matrix product runs on, and the OpenBLAS build that runs them: set from
// `--threads`, and recorded in logs and benchmarks so that figures can be compared.
//
// bnlab cuts each product into one block of the result per thread and computes the blocks at
// once on an OpenMP team, each through single-threaded OpenBLAS. On the batch sizes of these
// networks that is faster than OpenBLAS's own threads, which wait on each other between the
// pieces of a small product (README, Speed); OpenBLAS's pool is therefore kept at one thread.

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

namespace bnlab {

// Runs every later matrix product on `threads` threads; 0 takes OpenBLAS's default count (the
// OPENBLAS_NUM_THREADS environment variable, else one per core). Throws when negative.
void set_threads(int threads);
// The threads matrix products run on: set_threads's, or OpenBLAS's default count until then.
int thread_count();
// Layers that cut their work by samples themselves (Conv2d, pooling) run it on the same threads:
// parts_for(count) is the number of parts `count` samples are cut into (thread_count(), at most
// one per sample), and run_parts runs body(part, first, end) for each part's samples
// [first, end) at once, part p always getting the same samples for the same count and parts.
int parts_for(std::size_t count);

// A reference to a callable, which, unlike std::function, never copies the callable to the
// heap: a layer's lambda capturing a dozen references would be allocated anew at every step.
// The callable must outlive the reference (a lambda passed straight to a call does).
template <typename Signature>
class FunctionRef;
template <typename Result, typename... Args>
class FunctionRef<Result(Args...)> {
  public:
    template <typename Callable,
              typename = std::enable_if_t<!std::is_same_v<std::decay_t<Callable>, FunctionRef>>>
    FunctionRef(Callable&& callable)  // NOLINT: implicit, so that a lambda is taken as it is
        : callable_(const_cast<void*>(static_cast<const void*>(&callable))),
          call_([](void* callable, Args... args) -> Result {
              return (*static_cast<std::remove_reference_t<Callable>*>(callable))(
                  std::forward<Args>(args)...);
          }) {}
    Result operator()(Args... args) const { return call_(callable_, std::forward<Args>(args)...); }

  private:
    void* callable_;
    Result (*call_)(void*, Args...);
};

// body(part, first, end)
using PartBody = FunctionRef<void(int, std::size_t, std::size_t)>;

void run_parts(int parts, std::size_t count, PartBody body);
template <typename Body>
void run_parts(int parts, std::size_t count, Body&& body) {
    run_parts(parts, count, PartBody(body));
}
// Runs body(first, end) over [0, size) for an element-wise pass: on the calling thread for the
// widths of an MLP, where waking a team costs more than it saves, and cut into parts on bnlab's
// threads for the feature maps of a CNN (millions of values).
template <typename Body>
void for_chunks(std::size_t size, Body&& body) {
    constexpr std::size_t parallel_above = std::size_t(1) << 18;
    if (size <= parallel_above) {
        body(std::size_t(0), size);
        return;
    }
    run_parts(parts_for(size / (parallel_above / 4)), size,
              [&](int, std::size_t first, std::size_t end) { body(first, end); });
}
// OpenBLAS's own thread pool, which bnlab keeps at 1.
int openblas_threads();
// The kernel family OpenBLAS runs ("Haswell", "SkylakeX", …; OPENBLAS_CORETYPE overrides it).
std::string blas_core_name();
// OpenBLAS's build description ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64").
std::string blas_config();

}  // namespace bnlab
