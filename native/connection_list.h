// connection_list.h — a worker's lists of its connections, linked through the connections
// themselves: joining or leaving a list allocates nothing and takes constant time.
#pragma once

#include <cstddef>

namespace nsproxy {

// The links one object carries for one list it can be on.
template <typename T>
struct ListLinks {
  T* prev = nullptr;
  T* next = nullptr;
  bool linked = false;
};

// A doubly linked list of T through the member `Links` (a ListLinks<T>): T owns its links, the
// list owns nothing.
template <typename T, ListLinks<T> T::*Links>
class IntrusiveList {
 public:
  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  T* front() const { return head_; }
  static T* next(T* item) { return (item->*Links).next; }
  static bool contains(const T* item) { return (item->*Links).linked; }

  void push_back(T* item) {
    ListLinks<T>& l = item->*Links;
    l.prev = tail_;
    l.next = nullptr;
    l.linked = true;
    (tail_ ? (tail_->*Links).next : head_) = item;
    tail_ = item;
    size_++;
  }

  void remove(T* item) {
    ListLinks<T>& l = item->*Links;
    if (!l.linked) return;
    (l.prev ? (l.prev->*Links).next : head_) = l.next;
    (l.next ? (l.next->*Links).prev : tail_) = l.prev;
    l = ListLinks<T>{};
    size_--;
  }

 private:
  T* head_ = nullptr;
  T* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace nsproxy
