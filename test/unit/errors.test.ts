import t from 'tap';
import { FabricError, LegoError, SyscallError } from '../../lib/errors.js';

t.test('errors carry a code and retriable flag', async (t) => {
  const e = new FabricError('IBV_WC_REM_ACCESS_ERR', 'remote access error', { wcStatus: 10, wrId: 7n });
  t.ok(e instanceof LegoError);
  t.equal(e.code, 'IBV_WC_REM_ACCESS_ERR');
  t.equal(e.wcStatus, 10);
  t.equal(e.wrId, 7n);
  t.equal(e.retriable, false);
  const s = new SyscallError('EFAULT', 'bad address', { retriable: false });
  t.equal(s.name, 'SyscallError');
  t.equal(s.code, 'EFAULT');
});
