#pragma once
// One option of an options class with chained setters, as libtorch's options are written:
//   class EarlyStoppingOptions { BNLAB_OPTION(EarlyStoppingOptions, int, patience, 3) };
//   EarlyStoppingOptions().patience(5).patience()  // 5
// `type` must have no comma in it (a using-declaration names a template that has).

#include <utility>

#define BNLAB_OPTION(owner, type, name, default_value) \
  public:                                              \
    owner& name(type value) {                          \
        name##_ = std::move(value);                    \
        return *this;                                  \
    }                                                  \
    const type& name() const {                         \
        return name##_;                                \
    }                                                  \
                                                       \
  private:                                             \
    type name##_ = default_value;
