#include "processes/context.h"

namespace pwrcell::processes {

bool Shared::TryBeginListing(Timestamp now, Duration expiry) {
  std::lock_guard lock(mutex_);
  if (listing_since_ && now - *listing_since_ < expiry) return false;
  listing_since_ = now;
  return true;
}

void Shared::EndListing() {
  std::lock_guard lock(mutex_);
  listing_since_.reset();
}

bool Shared::ShouldRequest(const std::string& kind, const std::string& remote_id, Timestamp now,
                           Duration repeat_after) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = last_request_.try_emplace({kind, remote_id}, now);
  if (inserted) return true;
  if (now - it->second < repeat_after) return false;
  it->second = now;
  return true;
}

void Shared::ForgetRequest(const std::string& kind, const std::string& remote_id) {
  std::lock_guard lock(mutex_);
  last_request_.erase({kind, remote_id});
}

void Shared::NoteCommissioningWrite(const std::string& remote_id, Timestamp at) {
  std::lock_guard lock(mutex_);
  commissioning_writes_[remote_id] = at;
}

bool Shared::CommissioningWroteSince(const std::string& remote_id, Timestamp since) {
  std::lock_guard lock(mutex_);
  auto it = commissioning_writes_.find(remote_id);
  return it != commissioning_writes_.end() && it->second >= since;
}

void Shared::ForgetCommissioningWrites(const std::string& remote_id) {
  std::lock_guard lock(mutex_);
  commissioning_writes_.erase(remote_id);
}

}  // namespace pwrcell::processes
