// The view decision of a view change (docs/gcs.md): from the state reports of the members of a
// proposed view, the Install its coordinator sends - whether the view is primary, its base, who
// continues the lineage and who joins. Pure functions of their arguments, so the quorum rules are
// tested table by table (tests/view_decision_test.cpp), as etcd raft tests its own.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "gcs/messages.hpp"

namespace tutti::gcs {

using Reports = std::map<NodeId, StateReport>;
using Weights = std::map<NodeId, uint32_t>;  // a member not listed weighs 1

struct Lineage {
  const ViewInfo* lp = nullptr;          // the primary view the next view continues
  const ViewInfo* lcp = nullptr;         // the last primary view known committed
  std::map<NodeId, const ViewInfo*> of;  // each reporter's own lineage
};

// Whether view v may have committed, as far as the reports tell: not if a present member of it
// never persisted it, nor if a later install was built on a view before it.
bool maybe_committed(const Reports& reports, const ViewInfo& v);
// Each reporter's lineage is the latest primary view it persisted that may have committed; LP is
// the latest of those. The pointers point into reports.
Lineage choose_lineage(const Reports& reports);
// Whether the reporters weigh a strict majority of v's voters (its members but its learners).
bool majority_of(const Reports& reports, const ViewInfo& v, const Weights& weights);

struct ViewDecision {
  Install install;
  std::vector<NodeId> continuing;  // the members continuing LP (primary views only)
  std::string text;                // the decision and every report, for failure reports
};

// The view id with these members, decided from their reports (one per member).
// persist_before_ack false: memory durability's stricter rule after a crash of every member.
ViewDecision decide_view(const ViewKey& id, const std::vector<NodeId>& members,
                         const Reports& reports, const Weights& weights, bool persist_before_ack);

}  // namespace tutti::gcs
