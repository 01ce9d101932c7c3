// The change-log position after a commit (desktop/src/sync/commit.ts ownRunEnd, issue 22): the index moves past the
// versions this device just committed only while the next seqs are all its own; another device's version in between
// (or a seq it does not know) stops it there, and the pull fetches from that point.
import test from 'ava';
import { ownRunEnd } from '../../desktop/dist/sync/commit.js';

test('the position moves over a contiguous run of own seqs that starts right after it', (t) => {
  t.is(ownRunEnd(0, [1, 2, 3]), 3);
  t.is(ownRunEnd(100, [103, 101, 102]), 103, 'order does not matter');
  t.is(ownRunEnd(7, []), 7);
});

test('another device\'s version before or between own ones stops the run', (t) => {
  t.is(ownRunEnd(100, [102, 103]), 100, 'seq 101 is someone else\'s: nothing skipped');
  t.is(ownRunEnd(100, [101, 102, 104, 105]), 102, 'seq 103 is someone else\'s: the pull starts there');
  t.is(ownRunEnd(100, [0, 0]), 100, 'a version whose seq the answer did not give (0) moves nothing');
  t.is(ownRunEnd(100, [99, 100, 101]), 101, 'seqs at or before the position (replays) change nothing');
});
