// SPDX-License-Identifier: GPL-2.0
/*
 * Network Block Device driver: devices, blk-mq and session lifecycle.
 *
 * A drop-in replacement for upstream's nbd driver: same major number,
 * ioctls, netlink family, sysfs and debugfs files and module parameters.
 * See Documentation/admin-guide/blockdev/nbd.rst.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/major.h>
#include <linux/blkdev.h>
#include <linux/blk-mq.h>
#include <linux/idr.h>
#include <linux/net.h>
#include <linux/file.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include <linux/overflow.h>
#include <linux/sizes.h>
#include <linux/un.h>
#include <net/sock.h>

#include "nbd.h"
#include "trace.h"
#include "transport.h"

static DEFINE_IDR(nbd_index_idr);
static DEFINE_MUTEX(nbd_index_mutex);
static struct workqueue_struct *nbd_del_wq;

static int nbds_max = 16;
module_param(nbds_max, int, 0444);
MODULE_PARM_DESC(nbds_max, "number of devices to create at load time (default: 16)");

static int max_part = 16;
module_param(max_part, int, 0444);
MODULE_PARM_DESC(max_part, "number of partitions per device (default: 16)");

static int part_shift;

static unsigned int disconnect_timeout = 5;
module_param(disconnect_timeout, uint, 0644);
MODULE_PARM_DESC(disconnect_timeout, "seconds a disconnect waits for the server to answer the requests in flight, when no request timeout is set (default: 5)");

/* Requests */

/**
 * nbd_cmd_end() - complete a request
 * @cmd: a request this driver owns (state NBD_CMD_IDLE, started)
 * @status: the result
 *
 * The completion work runs on the submitting CPU (blk-mq's choice), not
 * in the receiver: one receiver serves a whole connection, and ending
 * every request in it made it the bottleneck at queue depth 32 (half
 * the IOPS under QEMU TCG).
 */
void nbd_cmd_end(struct nbd_cmd *cmd, blk_status_t status)
{
	cmd->status = status;
	blk_mq_complete_request(blk_mq_rq_from_pdu(cmd));
}

/**
 * nbd_cmd_retry_or_fail() - a request's connection failed under it
 * @cmd: a request this driver owns (state NBD_CMD_IDLE, started)
 * @config: the session
 * @status: the status to fail it with
 *
 * The request is sent again when that can still succeed: another
 * connection is alive, or a reconnect is awaited (dead-connection
 * timeout).  A write acknowledged before the failure was completed
 * already; one that was not is written again, which is safe because
 * writes are idempotent.  After a requested disconnect it fails.
 */
void nbd_cmd_retry_or_fail(struct nbd_cmd *cmd, struct nbd_config *config,
			   blk_status_t status)
{
	struct request *rq = blk_mq_rq_from_pdu(cmd);

	if (!test_bit(NBD_RT_DISCONNECT_REQUESTED, &config->flags) &&
	    !test_bit(NBD_RT_TEARDOWN, &config->flags) &&
	    (atomic_read(&config->live_conns) > 0 ||
	     config->dead_conn_timeout)) {
		trace_nbd_requeue(config->nbd->index, rq, cmd->wire.type,
				  blk_status_to_errno(status));
		blk_mq_requeue_request(rq, true);
		return;
	}
	nbd_cmd_end(cmd, status);
}

/**
 * nbd_cmd_finish() - give up one reference to a request
 * @cmd: the request; the caller owns a reference (see struct nbd_cmd)
 * @status: the result, when the caller is the one ending the request
 * @retry: hand the request back (nbd_cmd_retry_or_fail()) instead
 *
 * The last reference ends the request the way the one that ended it
 * asked: the sender's own reference carries no outcome, so it calls
 * this only through nbd_cmd_put().
 */
void nbd_cmd_finish(struct nbd_cmd *cmd, blk_status_t status, bool retry)
{
	cmd->status = status;
	cmd->retry = retry;
	nbd_cmd_put(cmd);
}

/**
 * nbd_cmd_put() - drop a reference to a request, ending it on the last
 * @cmd: the request
 */
void nbd_cmd_put(struct nbd_cmd *cmd)
{
	if (!atomic_dec_and_test(&cmd->refs))
		return;
	/*
	 * A reply to a request whose data did not all go out: the server
	 * answered what it never received whole.  Never report that as
	 * done (nor as the server's error); send it again.
	 */
	if (unlikely(cmd->send_failed) && !cmd->retry) {
		cmd->retry = true;
		cmd->status = BLK_STS_IOERR;
	}
	if (cmd->retry)
		nbd_cmd_retry_or_fail(cmd, cmd->conn->config, cmd->status);
	else
		nbd_cmd_end(cmd, cmd->status);
}

static void nbd_disconnect_and_put_if(struct nbd_device *nbd, bool send_disc,
				      bool if_dead);

/**
 * nbd_conn_lost() - bookkeeping when a connection has failed
 * @conn: the connection, just marked dead
 */
void nbd_conn_lost(struct nbd_conn *conn)
{
	struct nbd_config *config = conn->config;
	struct nbd_device *nbd = conn->nbd;
	bool all_dead;

	all_dead = atomic_dec_return(&config->live_conns) == 0;
	if (all_dead)
		WRITE_ONCE(config->dead_since, jiffies);
	if (!test_bit(NBD_RT_STARTED, &config->flags) ||
	    test_bit(NBD_RT_DISCONNECT_REQUESTED, &config->flags) ||
	    test_bit(NBD_RT_TEARDOWN, &config->flags))
		return;
	nbd_genl_link_dead(nbd->index);

	/*
	 * A netlink session with no live connection ends when no reconnect
	 * came within the dead-connection timeout (at once without one).
	 * An ioctl session ends by itself: NBD_DO_IT returns.  The caller
	 * holds a config reference, so ours is never the last one here.
	 */
	if (all_dead && test_bit(NBD_RT_BOUND, &config->flags)) {
		refcount_inc(&nbd->config_refs);
		if (!queue_delayed_work(system_wq, &nbd->dead_work,
					config->dead_conn_timeout))
			refcount_dec(&nbd->config_refs);
	}
}

/*
 * nbd_cancel_dead_work() - a reconnect or a disconnect came first: drop
 * the pending dead-session work and its config reference.  The caller
 * holds another config reference.
 */
static void nbd_cancel_dead_work(struct nbd_device *nbd)
{
	if (cancel_delayed_work(&nbd->dead_work))
		refcount_dec(&nbd->config_refs);
}

static void nbd_dead_workfn(struct work_struct *work)
{
	struct nbd_device *nbd = container_of(to_delayed_work(work),
					      struct nbd_device, dead_work);

	nbd_disconnect_and_put_if(nbd, false, true);
	nbd_config_put(nbd);	/* the work's own reference */
}

/*
 * Connections and hardware queues: blk-mq makes at most one hardware
 * queue per CPU, so with more connections than CPUs hardware queue h owns
 * connections h, h + nr_hw_queues, h + 2 * nr_hw_queues, ...  Upstream
 * leaves the extra connections unused.  Here a hardware queue sends on
 * its first connection while that keeps up, and moves on to the next one
 * it owns when the socket pushes back (the sender is draining a backlog),
 * so the extra connections add bandwidth where the transport is the
 * bottleneck without spreading light loads thin: every connection in use
 * costs the server a reader and the client a receiver wakeup per batch.
 */
static inline bool nbd_conn_of_hctx(struct nbd_device *nbd,
				    struct nbd_conn *conn,
				    struct blk_mq_hw_ctx *hctx)
{
	return conn->index % nbd->tag_set.nr_hw_queues == hctx->queue_num;
}

/**
 * nbd_pick_conn() - the connection a request goes out on
 * @config: the started session
 * @nr_hw: the tag set's hardware queue count
 * @h: the request's hardware queue
 * @tag: the request's tag
 *
 * blk_mq_update_nr_hw_queues() cannot fail, but it may leave more
 * hardware queues than connections (it keeps the old count when it
 * cannot allocate the new one): a hardware queue without a connection of
 * its own then takes the one its number wraps around to.
 *
 * Return: a usable connection, or NULL when there is none.
 */
VISIBLE_IF_KUNIT struct nbd_conn *nbd_pick_conn(struct nbd_config *config,
						unsigned int nr_hw,
						unsigned int h,
						unsigned int tag)
{
	unsigned int n = config->num_conns;
	unsigned int owned, i;
	struct nbd_conn *conn;

	if (unlikely(!n || !nr_hw))
		return NULL;
	if (unlikely(h >= n)) {
		h %= n;
		owned = 1;
	} else {
		owned = DIV_ROUND_UP(n - h, nr_hw);
	}
	for (i = 0; i < owned; i++) {
		conn = config->conns[h + nr_hw * i];
		if (likely(nbd_conn_usable(conn) && !nbd_conn_backed_up(conn)))
			return conn;
	}

	/* All backed up (or not usable): spread over them. */
	conn = config->conns[h + nr_hw * (tag % owned)];
	if (likely(nbd_conn_usable(conn)))
		return conn;

	/* That one failed: any usable connection will do. */
	for (i = 1; i < n; i++) {
		struct nbd_conn *other = config->conns[(conn->index + i) % n];

		if (nbd_conn_usable(other))
			return other;
	}
	return NULL;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_pick_conn);

/* End of a batch: send what this hardware queue's connections have. */
static void nbd_push_hctx(struct nbd_config *config,
			  struct blk_mq_hw_ctx *hctx)
{
	unsigned int nr_hw = config->nbd->tag_set.nr_hw_queues;
	unsigned int i;

	for (i = hctx->queue_num; i < config->num_conns; i += nr_hw)
		if (!llist_empty(&config->conns[i]->send_list))
			nbd_conn_push(config->conns[i]);
}

static blk_status_t nbd_no_conn(struct blk_mq_hw_ctx *hctx,
				struct nbd_config *config)
{
	unsigned long deadline = READ_ONCE(config->dead_since) +
				 config->dead_conn_timeout;

	/*
	 * Connections still alive but ending softly (the server answered
	 * ESHUTDOWN): they are dead soon, and then a reconnect is awaited
	 * or the request fails.
	 */
	if (atomic_read(&config->live_conns) > 0) {
		blk_mq_delay_run_hw_queue(hctx, msecs_to_jiffies(100));
		return BLK_STS_DEV_RESOURCE;
	}
	if (config->dead_conn_timeout &&
	    time_before(jiffies, deadline)) {
		/* Wait for a reconnect; look again in a while. */
		blk_mq_delay_run_hw_queue(hctx, msecs_to_jiffies(100));
		return BLK_STS_DEV_RESOURCE;
	}
	dev_err_ratelimited(nbd_to_dev(config->nbd),
			    "no live connection, failing I/O\n");
	return BLK_STS_IOERR;
}

static blk_status_t nbd_queue_rq(struct blk_mq_hw_ctx *hctx,
				 const struct blk_mq_queue_data *bd)
{
	struct nbd_device *nbd = hctx->queue->queuedata;
	struct nbd_config *config = READ_ONCE(nbd->config);
	struct request *rq = bd->rq;
	struct nbd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	struct nbd_conn *conn;
	int ret;

	/* Teardown quiesces the queue before it clears nbd->config. */
	if (unlikely(!config || !test_bit(NBD_RT_STARTED, &config->flags))) {
		dev_err_ratelimited(nbd_to_dev(nbd),
				    "I/O on a device that is not connected\n");
		return BLK_STS_IOERR;
	}
	/* Nothing new goes out once a disconnect has begun. */
	if (unlikely(test_bit(NBD_RT_DISCONNECT_REQUESTED, &config->flags))) {
		dev_err_ratelimited(nbd_to_dev(nbd),
				    "I/O while disconnecting, failing it\n");
		return BLK_STS_IOERR;
	}

	ret = nbd_build_wire_cmd(req_op(rq), rq->cmd_flags,
				 (u64)blk_rq_pos(rq) << SECTOR_SHIFT,
				 blk_rq_bytes(rq), config->server_flags,
				 &cmd->wire);
	if (unlikely(ret)) {
		if (ret == -EROFS)
			dev_err_ratelimited(nbd_to_dev(nbd),
					    "%s on a read-only export refused\n",
					    blk_op_str(req_op(rq)));
		/* EOPNOTSUPP for both: the export cannot do it. */
		return BLK_STS_NOTSUPP;
	}
	if (unlikely(!nbd_wire_cmd_obeys(&cmd->wire, config->min_block,
					 config->max_payload))) {
		/* The queue limits forbid it: never put it on the wire. */
		dev_err_ratelimited(nbd_to_dev(nbd),
				    "%s of %u bytes at %llu breaks the server's block sizes (minimum %u, maximum %u): refused\n",
				    nbd_cmd_name(cmd->wire.type),
				    cmd->wire.length, cmd->wire.offset,
				    config->min_block, config->max_payload);
		return BLK_STS_IOERR;
	}

	conn = nbd_pick_conn(config, nbd->tag_set.nr_hw_queues,
			     hctx->queue_num, rq->tag);
	if (unlikely(!conn))
		return nbd_no_conn(hctx, config);

	WRITE_ONCE(cmd->conn, conn);
	cmd->status = BLK_STS_OK;
	cmd->retry = false;
	cmd->send_failed = false;
	atomic_set(&cmd->refs, 1);
	blk_mq_start_request(rq);
	WRITE_ONCE(cmd->state, NBD_CMD_QUEUED);
	nbd_conn_queue(conn, cmd);
	if (unlikely(!nbd_conn_of_hctx(nbd, conn, hctx)))
		nbd_conn_push(conn);
	if (bd->last)
		nbd_push_hctx(config, hctx);
	return BLK_STS_OK;
}

static void nbd_commit_rqs(struct blk_mq_hw_ctx *hctx)
{
	struct nbd_device *nbd = hctx->queue->queuedata;
	struct nbd_config *config = READ_ONCE(nbd->config);

	if (config && test_bit(NBD_RT_STARTED, &config->flags))
		nbd_push_hctx(config, hctx);
}

static void nbd_complete_rq(struct request *rq)
{
	struct nbd_cmd *cmd = blk_mq_rq_to_pdu(rq);

	nbd_sr_ranges_reset(&cmd->sr_ranges);
	blk_mq_end_request(rq, cmd->status);
}

static void nbd_config_put_workfn(struct work_struct *work)
{
	struct nbd_device *nbd = container_of(work, struct nbd_device,
					      config_put_work);

	nbd_config_put(nbd);
}

/*
 * A request took too long.  The request itself is never completed here:
 * its connection is shut down, and the receiver's reaper then hands it
 * back (to another connection, or failed), so a late reply and the
 * timeout can never both complete it.
 */
static enum blk_eh_timer_return nbd_timeout(struct request *rq)
{
	struct nbd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	struct nbd_device *nbd = cmd->nbd;
	struct nbd_config *config;
	struct nbd_conn *conn;

	if (!refcount_inc_not_zero(&nbd->config_refs))
		return BLK_EH_RESET_TIMER;	/* teardown fails it */
	config = nbd->config;

	if (!nbd->tag_set.timeout) {
		dev_info_ratelimited(nbd_to_dev(nbd),
				     "possibly stuck %s request at %llu (%u bytes), still waiting: no timeout is set\n",
				     nbd_cmd_name(cmd->wire.type),
				     cmd->wire.offset, cmd->wire.length);
		goto out;
	}

	conn = READ_ONCE(cmd->conn);
	if (conn && nbd_conn_alive(conn)) {
		set_bit(NBD_RT_TIMEDOUT, &config->flags);
		dev_err_ratelimited(nbd_to_dev(nbd),
				    "connection %u: %s request at %llu (%u bytes) timed out, closing the connection\n",
				    conn->index, nbd_cmd_name(cmd->wire.type),
				    cmd->wire.offset, cmd->wire.length);
		nbd_conn_fail(conn, -ETIMEDOUT);
	}
out:
	/* Never tear down from here: teardown waits for this handler. */
	if (!refcount_dec_not_one(&nbd->config_refs))
		queue_work(system_wq, &nbd->config_put_work);
	return BLK_EH_RESET_TIMER;
}

static int nbd_init_request(struct blk_mq_tag_set *set, struct request *rq,
			    unsigned int hctx_idx, unsigned int numa_node)
{
	struct nbd_cmd *cmd = blk_mq_rq_to_pdu(rq);

	cmd->nbd = set->driver_data;
	spin_lock_init(&cmd->lock);
	cmd->state = NBD_CMD_IDLE;
	cmd->gen = 0;
	cmd->sr_ranges.bitmap = NULL;
	return 0;
}

static void nbd_exit_request(struct blk_mq_tag_set *set, struct request *rq,
			     unsigned int hctx_idx)
{
	nbd_sr_ranges_reset(&((struct nbd_cmd *)blk_mq_rq_to_pdu(rq))->sr_ranges);
}

static const struct blk_mq_ops nbd_mq_ops = {
	.queue_rq	= nbd_queue_rq,
	.commit_rqs	= nbd_commit_rqs,
	.complete	= nbd_complete_rq,
	.init_request	= nbd_init_request,
	.exit_request	= nbd_exit_request,
	.timeout	= nbd_timeout,
};

/* sysfs: pid and backend exist while the device is started */

/*
 * No config_lock here: teardown removes these files under config_lock and
 * waits for their readers.  A session is freed only after its files are
 * gone, so the one a reader sees stays valid while it reads.
 */
static ssize_t pid_show(struct device *dev, struct device_attribute *attr,
			char *buf)
{
	struct nbd_device *nbd = dev_to_disk(dev)->private_data;
	struct nbd_config *config = READ_ONCE(nbd->config);

	if (!config)
		return -ENOENT;
	return sysfs_emit(buf, "%d\n", config->pid);
}
static DEVICE_ATTR_RO(pid);

static ssize_t backend_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	struct nbd_device *nbd = dev_to_disk(dev)->private_data;
	struct nbd_config *config = READ_ONCE(nbd->config);

	if (!config || !config->backend)
		return -ENOENT;
	return sysfs_emit(buf, "%s\n", config->backend);
}
static DEVICE_ATTR_RO(backend);

/* Sessions */

static void nbd_default_qlimits(struct nbd_qlimits *l, unsigned int blksize)
{
	*l = (struct nbd_qlimits) {
		.blksize = blksize,
		.max_hw_sectors = NBD_MAX_HW_SECTORS,
	};
}

/**
 * nbd_flags_to_qlimits() - the queue limits an export's flags call for
 * @flags: transmission flags (NBD_FLAG_*)
 * @blksize: block size in bytes
 * @l: the limits to fill
 */
VISIBLE_IF_KUNIT void nbd_flags_to_qlimits(u32 flags, unsigned int blksize,
					   struct nbd_qlimits *l)
{
	/* The protocol's length field is 32 bits wide. */
	unsigned int max_sectors = round_down(U32_MAX, blksize) >>
				   SECTOR_SHIFT;

	nbd_default_qlimits(l, blksize);
	if (flags & NBD_FLAG_SEND_TRIM)
		l->max_discard_sectors = max_sectors;
	if (flags & NBD_FLAG_SEND_WRITE_ZEROES)
		l->max_write_zeroes_sectors = max_sectors;
	l->write_cache = flags & NBD_FLAG_SEND_FLUSH;
	l->fua = (flags & NBD_FLAG_SEND_FLUSH) && (flags & NBD_FLAG_SEND_FUA);
	l->rotational = flags & NBD_FLAG_ROTATIONAL;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_flags_to_qlimits);

/**
 * nbd_constraints_to_qlimits() - keep the queue to a server's block sizes
 * @min: minimum block size (0: the server gave none, nothing to do)
 * @pref: preferred block size
 * @max: maximum payload (0: no limit)
 * @l: the limits, filled by nbd_flags_to_qlimits() with the logical block
 *	size nbd_check_constraints() accepted (a multiple of @min)
 *
 * The logical block size keeps every request's offset and length to
 * multiples of @min (discard and write-zeroes included, their granularity
 * is the logical block); the preferred size is the physical block and the
 * smallest efficient I/O; the maximum payload caps reads and writes.
 */
VISIBLE_IF_KUNIT void nbd_constraints_to_qlimits(u32 min, u32 pref, u32 max,
						 struct nbd_qlimits *l)
{
	if (!min)
		return;
	if (pref > l->blksize) {
		l->physical = pref;
		l->io_opt = pref;
	}
	if (max)
		l->max_hw_sectors = min(l->max_hw_sectors,
					round_down(max, l->blksize) >>
					SECTOR_SHIFT);
}
EXPORT_SYMBOL_IF_KUNIT(nbd_constraints_to_qlimits);

/**
 * nbd_check_constraints() - check a server's block sizes from userspace
 * @nbd: the device, for messages
 * @min: minimum block size
 * @pref: preferred block size
 * @max: maximum payload (U32_MAX: no limit)
 * @blksize: the logical block size asked for
 * @extack: where to say what is wrong, or NULL
 *
 * The values must be what the protocol allows, and this kernel must be
 * able to keep to them: the logical block size (at most a page) a
 * multiple of the minimum, and a maximum of at least a page.
 *
 * Return: 0 or -EINVAL (with a message).
 */
int nbd_check_constraints(struct nbd_device *nbd, u32 min, u32 pref, u32 max,
			  u64 blksize, struct netlink_ext_ack *extack)
{
	const char *why = NULL;

	if (!min || !is_power_of_2(min) || min > SZ_64K)
		why = "minimum not a power of two up to 64 KiB";
	else if (!is_power_of_2(pref) || pref < max_t(u32, min, SECTOR_SIZE))
		why = "preferred not a power of two >= minimum and 512";
	else if (max < pref || (max != U32_MAX && !IS_ALIGNED(max, min)))
		why = "maximum below preferred or not a multiple of minimum";
	else if (min > PAGE_SIZE)
		why = "minimum larger than a page, the largest logical block";
	else if (blksize < min)
		why = "block size smaller than the minimum";
	else if (max < PAGE_SIZE || max < blksize)
		why = "maximum smaller than a page or the block size";
	if (!why)
		return 0;
	dev_err(nbd_to_dev(nbd),
		"the server's block sizes (minimum %u, preferred %u, maximum %u) cannot be kept with block size %llu: %s\n",
		min, pref, max, blksize, why);
	NL_SET_ERR_MSG(extack,
		       "nbd: the server's block sizes cannot be kept (see dmesg)");
	return -EINVAL;
}

/**
 * nbd_update_capacity() - tell the block layer and udev about a new size
 * @nbd: the device
 * @bytesize: the size in bytes (0 when the device stops)
 *
 * Partitions are rescanned at the next open, which udev's change event
 * brings about.
 */
void nbd_update_capacity(struct nbd_device *nbd, u64 bytesize)
{
	struct gendisk *disk = nbd->disk;

	if (!(disk->flags & GENHD_FL_NO_PART))
		set_bit(GD_NEED_PART_SCAN, &disk->state);
	/* set_capacity_and_notify() stays silent for changes from/to 0 */
	if (!set_capacity_and_notify(disk, bytesize >> SECTOR_SHIFT))
		kobject_uevent(&disk_to_dev(disk)->kobj, KOBJ_CHANGE);
}

/**
 * nbd_check_blksize() - validate a block size from userspace
 * @nbd: the device, for the message
 * @blksize: block size in bytes
 *
 * Return: 0, or -EINVAL (with a message) unless a power of two from 512
 * to PAGE_SIZE.
 */
int nbd_check_blksize(struct nbd_device *nbd, u64 blksize)
{
	if (blksize < SECTOR_SIZE || blksize > PAGE_SIZE ||
	    !is_power_of_2(blksize)) {
		dev_err(nbd_to_dev(nbd),
			"invalid block size %llu: must be a power of two from 512 to %lu\n",
			blksize, PAGE_SIZE);
		return -EINVAL;
	}
	return 0;
}

/**
 * nbd_set_size() - set the size and block size of a session
 * @config: the session; the caller holds config_lock
 * @bytesize: size in bytes, a multiple of @blksize
 * @blksize: block size in bytes, or 0 to keep the current one
 *
 * On a started device only the size may change (an online resize).
 *
 * Return: 0, -EINVAL for bad values, -EBUSY for a block size change on a
 * started device.
 */
int nbd_set_size(struct nbd_config *config, u64 bytesize, u64 blksize)
{
	struct nbd_device *nbd = config->nbd;

	if (!blksize)
		blksize = config->blksize;
	if (nbd_check_blksize(nbd, blksize))
		return -EINVAL;
	if (bytesize > (u64)LLONG_MAX ||
	    (bytesize >> SECTOR_SHIFT) > (u64)(sector_t)-1) {
		dev_err(nbd_to_dev(nbd), "size %llu is too large\n", bytesize);
		return -EINVAL;
	}
	if (!IS_ALIGNED(bytesize, blksize)) {
		dev_err(nbd_to_dev(nbd),
			"size %llu is not a multiple of the block size %llu\n",
			bytesize, blksize);
		return -EINVAL;
	}
	if (test_bit(NBD_RT_STARTED, &config->flags)) {
		if (blksize != config->blksize) {
			dev_err(nbd_to_dev(nbd),
				"cannot change the block size of a connected device\n");
			return -EBUSY;
		}
		config->bytesize = bytesize;
		nbd_update_capacity(nbd, bytesize);
		return 0;
	}
	config->blksize = blksize;
	config->bytesize = bytesize;
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_set_size);

/**
 * nbd_set_timeout() - set the per-request timeout
 * @nbd: the device; the caller holds config_lock
 * @seconds: timeout, 0 for none (requests wait, and are logged as stuck)
 */
void nbd_set_timeout(struct nbd_device *nbd, u64 seconds)
{
	seconds = min_t(u64, seconds, NBD_MAX_TIMEOUT_SECS);
	nbd->tag_set.timeout = seconds * HZ;
	blk_queue_rq_timeout(nbd->disk->queue,
			     seconds ? seconds * HZ : NBD_DEFAULT_TIMEOUT);
}
EXPORT_SYMBOL_IF_KUNIT(nbd_set_timeout);

/* Another kernel user (an nbd connection, a sockmap, ...) owns the socket. */
static int nbd_sock_busy(struct nbd_device *nbd,
			 struct netlink_ext_ack *extack)
{
	dev_err(nbd_to_dev(nbd),
		"socket is in use by another kernel user (an nbd connection, a sockmap, ...)\n");
	NL_SET_ERR_MSG(extack, "nbd: socket is in use by another kernel user");
	return -EBUSY;
}

/**
 * nbd_check_sock() - check that a socket can carry NBD
 * @nbd: the device, for messages
 * @sock: the socket
 * @extack: netlink extended ack, or NULL
 *
 * Return: 0 for a connected TCP or UNIX stream socket no other kernel
 * user owns, plain or with kernel TLS set up both ways, else -EINVAL,
 * -ENOTCONN or -EBUSY with a message.
 */
int nbd_check_sock(struct nbd_device *nbd, struct socket *sock,
		   struct netlink_ext_ack *extack)
{
	struct sock *sk = sock->sk;

	if (sock->type != SOCK_STREAM || !sk ||
	    !(sk->sk_family == AF_UNIX ||
	      ((sk->sk_family == AF_INET || sk->sk_family == AF_INET6) &&
	       sk->sk_protocol == IPPROTO_TCP))) {
		dev_err(nbd_to_dev(nbd),
			"only TCP and UNIX stream sockets are supported\n");
		NL_SET_ERR_MSG(extack,
			       "nbd: only TCP and UNIX stream sockets are supported");
		return -EINVAL;
	}
	if (sock->state != SS_CONNECTED) {
		dev_err(nbd_to_dev(nbd), "socket is not connected\n");
		NL_SET_ERR_MSG(extack, "nbd: socket is not connected");
		return -ENOTCONN;
	}
	if (READ_ONCE(sk->sk_user_data))
		return nbd_sock_busy(nbd, extack);
	return nbd_tls_sock_check(nbd, sock, extack);
}
EXPORT_SYMBOL_IF_KUNIT(nbd_check_sock);

static int nbd_get_socket(struct nbd_device *nbd, int fd,
			  struct netlink_ext_ack *extack,
			  struct socket **sockp)
{
	struct socket *sock;
	int err;

	sock = sockfd_lookup(fd, &err);
	if (!sock) {
		if (err == -ENOTSOCK) {
			dev_err(nbd_to_dev(nbd), "fd %d is not a socket\n", fd);
			NL_SET_ERR_MSG(extack, "nbd: fd is not a socket");
			return -EINVAL;
		}
		dev_err(nbd_to_dev(nbd), "fd %d: bad file descriptor\n", fd);
		NL_SET_ERR_MSG(extack, "nbd: bad socket file descriptor");
		return err;
	}
	err = nbd_check_sock(nbd, sock, extack);
	if (err) {
		sockfd_put(sock);
		return err;
	}
	*sockp = sock;
	return 0;
}

/**
 * nbd_add_sock() - add a connection to a session being set up
 * @config: the session, not started; the caller holds config_lock
 * @sock: a socket that passed nbd_check_sock() and has a file; on
 *	success the connection owns that file reference
 * @extack: netlink extended ack, or NULL
 *
 * Return: 0 or a negative errno (with a message).
 */
int nbd_add_sock(struct nbd_config *config, struct socket *sock,
		 struct netlink_ext_ack *extack)
{
	struct nbd_device *nbd = config->nbd;
	struct nbd_conn **conns, *conn;

	if (test_bit(NBD_RT_STARTED, &config->flags)) {
		dev_err(nbd_to_dev(nbd),
			"cannot add a socket to a running device\n");
		return -EBUSY;
	}
	if (config->num_conns >= NBD_MAX_CONNECTIONS) {
		dev_err(nbd_to_dev(nbd), "too many connections (at most %d)\n",
			NBD_MAX_CONNECTIONS);
		NL_SET_ERR_MSG(extack, "nbd: too many connections");
		return -EINVAL;
	}

	conns = krealloc_array(config->conns, config->num_conns + 1,
			       sizeof(*conns), GFP_KERNEL);
	if (!conns)
		return -ENOMEM;
	config->conns = conns;

	conn = nbd_conn_create(config, config->num_conns, sock);
	if (IS_ERR(conn)) {
		if (PTR_ERR(conn) == -EBUSY)
			return nbd_sock_busy(nbd, extack);
		return PTR_ERR(conn);
	}
	config->conns[config->num_conns++] = conn;
	atomic_inc(&config->live_conns);
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_add_sock);

/**
 * nbd_add_socket() - add a connection, given a socket's file descriptor
 * @config: the session, not started; the caller holds config_lock
 * @fd: a connected socket's file descriptor in the calling task
 * @netlink: called for a netlink CONNECT (else NBD_SET_SOCK)
 * @extack: netlink extended ack, or NULL
 *
 * Return: 0 or a negative errno (with a message).
 */
int nbd_add_socket(struct nbd_config *config, int fd, bool netlink,
		   struct netlink_ext_ack *extack)
{
	struct nbd_device *nbd = config->nbd;
	struct socket *sock;
	int err;

	if (!netlink) {
		if (!config->setup_task)
			config->setup_task = current;
		if (config->setup_task != current) {
			dev_err(nbd_to_dev(nbd),
				"device is being set up by another task\n");
			return -EBUSY;
		}
	}
	err = nbd_get_socket(nbd, fd, extack, &sock);
	if (err)
		return err;
	err = nbd_add_sock(config, sock, extack);
	if (err)
		sockfd_put(sock);
	return err;
}

/**
 * nbd_clear_conns() - drop the sockets of a session not yet started
 * @config: the session; the caller holds config_lock
 *
 * The size, block size, flags and timeout stay.
 */
void nbd_clear_conns(struct nbd_config *config)
{
	unsigned int i;

	if (WARN_ON(test_bit(NBD_RT_STARTED, &config->flags)))
		return;
	for (i = 0; i < config->num_conns; i++) {
		nbd_conn_fail(config->conns[i], 0);
		nbd_conn_destroy(config->conns[i]);
	}
	config->num_conns = 0;
	config->setup_task = NULL;
}

static void nbd_start_conn(struct nbd_config *config, struct nbd_conn *conn)
{
	refcount_inc(&config->nbd->config_refs);
	atomic_inc(&config->recv_threads);
	set_bit(NBD_CONN_RECEIVING, &conn->flags);
	nbd_conn_start(conn);
}

/**
 * nbd_reconnect_socket() - replace a dead connection of a running session
 * @config: the started session; the caller holds config_lock
 * @fd: a connected socket's file descriptor in the calling task
 * @extack: netlink extended ack
 *
 * Return: 0, -ENOSPC when no connection is dead, or another errno.
 */
int nbd_reconnect_socket(struct nbd_config *config, int fd,
			 struct netlink_ext_ack *extack)
{
	struct nbd_device *nbd = config->nbd;
	struct nbd_conn *conn = NULL;
	struct socket *sock;
	unsigned int i;
	int err;

	err = nbd_get_socket(nbd, fd, extack, &sock);
	if (err)
		return err;

	for (i = 0; i < config->num_conns; i++) {
		if (!nbd_conn_alive(config->conns[i])) {
			conn = config->conns[i];
			break;
		}
	}
	if (!conn) {
		dev_err(nbd_to_dev(nbd), "no dead connection to replace\n");
		NL_SET_ERR_MSG(extack, "nbd: no dead connection to replace");
		sockfd_put(sock);
		return -ENOSPC;
	}

	/*
	 * The old receiver must be done before the socket changes.  Not
	 * flush_work(): the receiver may take config_lock in its last
	 * config put (not here, as the owner reference is held, but lockdep
	 * cannot know that).
	 */
	wait_event(config->recv_wq,
		   !test_bit(NBD_CONN_RECEIVING, &conn->flags));
	nbd_conn_sync(conn);
	/*
	 * Counted live before it is usable: a failure as soon as it is
	 * counts itself off again (and never below zero).
	 */
	atomic_inc(&config->live_conns);
	err = nbd_conn_replace_socket(conn, sock);
	if (err) {
		atomic_dec(&config->live_conns);
		sockfd_put(sock);
		return err == -EBUSY ? nbd_sock_busy(nbd, extack) : err;
	}
	nbd_cancel_dead_work(nbd);
	nbd_start_conn(config, conn);
	/* a flapping server must not flood the log */
	dev_info_ratelimited(nbd_to_dev(nbd), "connection %u reconnected\n",
			     conn->index);
	trace_nbd_reconnect(nbd->index, conn->index);
	blk_mq_run_hw_queues(nbd->disk->queue, true);
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_reconnect_socket);

/**
 * nbd_config_create() - create a session for a device
 * @nbd: the device; the caller holds config_lock and nbd->config is NULL
 *
 * The session starts with its owner reference (NBD_RT_HAS_CONFIG_REF)
 * and holds a device reference and a module reference.
 *
 * Return: the session or an ERR_PTR.
 */
struct nbd_config *nbd_config_create(struct nbd_device *nbd)
{
	struct nbd_config *config;

	if (!try_module_get(THIS_MODULE))
		return ERR_PTR(-ENODEV);
	config = kzalloc(sizeof(*config), GFP_KERNEL);
	if (!config) {
		module_put(THIS_MODULE);
		return ERR_PTR(-ENOMEM);
	}
	config->nbd = nbd;
	config->blksize = NBD_DEFAULT_BLKSIZE;
	atomic_set(&config->live_conns, 0);
	atomic_set(&config->recv_threads, 0);
	init_waitqueue_head(&config->recv_wq);
	set_bit(NBD_RT_HAS_CONFIG_REF, &config->flags);

	refcount_inc(&nbd->refs);
	WRITE_ONCE(nbd->config, config);
	/* nbd_timeout() reads nbd->config once it got a reference */
	smp_wmb();
	refcount_set(&nbd->config_refs, 1);
	return config;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_config_create);

/**
 * nbd_shutdown_conns() - shut every connection of a session down
 * @config: the session
 */
void nbd_shutdown_conns(struct nbd_config *config)
{
	unsigned int i;

	for (i = 0; i < config->num_conns; i++)
		nbd_conn_fail(config->conns[i], 0);
}

/**
 * nbd_wait_receivers() - wait until every receive worker of a session is done
 * @nbd: the device
 * @config: its session; the caller holds a reference and not config_lock
 *
 * A receiver wakes @config->recv_wq before it drops its session reference,
 * so the count alone returns while one may still hold it.  Flushing the
 * receive work items waits for the work functions to return: once
 * this returns, the caller's reference may be the last one, and putting it
 * tears the session down before the caller goes back to user space (a
 * DISCONNECT followed at once by a CONNECT finds the device free).
 */
void nbd_wait_receivers(struct nbd_device *nbd, struct nbd_config *config)
{
	unsigned int i;

	wait_event(config->recv_wq, !atomic_read(&config->recv_threads));
	/* TCP receivers run on the device's io_wq, the others on their own. */
	for (i = 0; i < config->num_conns; i++)
		nbd_conn_flush_recv(config->conns[i]);
}

/**
 * nbd_disconnect_start() - begin a soft disconnect
 * @config: the session; the caller holds config_lock
 *
 * Marks the disconnect as requested: no new request goes out, failures
 * that follow are not reported as link failures and requests are not
 * retried.  Every connection then sends NBD_CMD_DISC after what it has
 * queued, nothing after it, and shuts down once the requests on the wire
 * have their replies (nbd_conn_drain()).  Never waits: the caller drops
 * config_lock and calls nbd_disconnect_wait().
 */
void nbd_disconnect_start(struct nbd_config *config)
{
	unsigned int i;

	if (!test_and_set_bit(NBD_RT_DISCONNECT_REQUESTED, &config->flags) &&
	    test_bit(NBD_RT_STARTED, &config->flags))
		dev_info(nbd_to_dev(config->nbd), "disconnect requested\n");
	if (!test_bit(NBD_RT_STARTED, &config->flags))
		return;
	for (i = 0; i < config->num_conns; i++)
		nbd_conn_drain(config->conns[i], false);
}

/**
 * nbd_disconnect_wait() - let a soft disconnect finish, within a bound
 * @nbd: the device
 * @config: its session; the caller holds a reference and not config_lock
 *
 * Waits until every connection has ended (nbd_disconnect_start()), for
 * the request timeout when one is set (a request may take that long
 * anyway), else for disconnect_timeout seconds: a healthy server answers
 * what is in flight in far less, and one that does not within that time
 * is stuck.  A fatal signal ends the wait too.  Then every connection is
 * shut down, which wakes a sender blocked on a server that stopped
 * reading, and what is still in flight fails.  Sleeps killably, holding
 * no lock.
 */
void nbd_disconnect_wait(struct nbd_device *nbd, struct nbd_config *config)
{
	unsigned long bound = READ_ONCE(nbd->tag_set.timeout);
	long left;

	if (!bound)
		bound = min_t(unsigned long, READ_ONCE(disconnect_timeout),
			      NBD_MAX_TIMEOUT_SECS) * HZ;
	left = wait_event_killable_timeout(config->recv_wq,
					   !atomic_read(&config->recv_threads),
					   bound);
	if (!left)
		dev_warn(nbd_to_dev(nbd),
			 "disconnect: the server did not answer within %lu s, closing the connections\n",
			 bound / HZ);
	else if (left < 0)
		dev_warn(nbd_to_dev(nbd),
			 "disconnect interrupted by a signal, closing the connections\n");
	nbd_shutdown_conns(config);
}

/*
 * nbd_disconnect_and_put_if() - nbd_disconnect_and_put(), or with @if_dead
 * only if the session still has no live connection (the dead-session work:
 * a reconnect may have come in the meantime).
 */
static void nbd_disconnect_and_put_if(struct nbd_device *nbd, bool send_disc,
				      bool if_dead)
{
	struct nbd_config *config;

	mutex_lock(&nbd->config_lock);
	config = nbd->config;
	if (!config || (if_dead && atomic_read(&config->live_conns)) ||
	    !test_and_clear_bit(NBD_RT_HAS_CONFIG_REF, &config->flags)) {
		mutex_unlock(&nbd->config_lock);
		return;
	}
	if (if_dead)
		dev_warn(nbd_to_dev(nbd),
			 "no live connection%s: disconnecting\n",
			 config->dead_conn_timeout ?
			 " and no reconnect within the dead-connection timeout" :
			 " (no dead-connection timeout set)");
	else
		nbd_cancel_dead_work(nbd);
	if (test_bit(NBD_RT_STARTED, &config->flags) && get_capacity(nbd->disk))
		nbd_update_capacity(nbd, 0);
	if (send_disc) {
		nbd_disconnect_start(config);
	} else {
		set_bit(NBD_RT_DISCONNECT_REQUESTED, &config->flags);
		nbd_shutdown_conns(config);
	}
	mutex_unlock(&nbd->config_lock);

	/* Our owner reference keeps the session. */
	if (send_disc)
		nbd_disconnect_wait(nbd, config);
	/* Bounded: every socket is shut down by now. */
	nbd_wait_receivers(nbd, config);
	nbd_config_put(nbd);
}

/**
 * nbd_disconnect_and_put() - end a session on the user's request
 * @nbd: the device; the caller does not hold config_lock
 * @send_disc: disconnect softly first (nbd_disconnect_start() and
 *	nbd_disconnect_wait()), else shut the connections down at once
 *
 * Shuts the connections down, waits for the receivers and drops the
 * owner reference, so that by return the session is gone unless an
 * opener or NBD_DO_IT still holds it.
 */
void nbd_disconnect_and_put(struct nbd_device *nbd, bool send_disc)
{
	nbd_disconnect_and_put_if(nbd, send_disc, false);
}
EXPORT_SYMBOL_IF_KUNIT(nbd_disconnect_and_put);

static bool nbd_fail_leftover(struct request *rq, void *data)
{
	struct nbd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	bool mine;

	spin_lock_bh(&cmd->lock);
	mine = cmd->state != NBD_CMD_IDLE;
	if (mine)
		WRITE_ONCE(cmd->state, NBD_CMD_IDLE);
	spin_unlock_bh(&cmd->lock);
	if (mine)
		nbd_cmd_finish(cmd, BLK_STS_IOERR, false);
	return true;
}

/* The last reference to the session is gone: undo everything. */
static void nbd_config_teardown(struct nbd_device *nbd)
{
	struct nbd_config *config = nbd->config;
	struct request_queue *q = nbd->disk->queue;
	struct nbd_qlimits lim;
	unsigned int i;

	set_bit(NBD_RT_TEARDOWN, &config->flags);
	/* First, so that nothing (udev's blkid) reads a dead device. */
	if (test_bit(NBD_RT_STARTED, &config->flags) && get_capacity(nbd->disk))
		nbd_update_capacity(nbd, 0);
	nbd_dbg_dev_remove(config);
	if (test_and_clear_bit(NBD_RT_HAS_PID_FILE, &config->flags))
		device_remove_file(nbd_to_dev(nbd), &dev_attr_pid);
	if (test_and_clear_bit(NBD_RT_HAS_BACKEND_FILE, &config->flags))
		device_remove_file(nbd_to_dev(nbd), &dev_attr_backend);

	/* Receivers have ended (each held a reference); stop the senders. */
	nbd_shutdown_conns(config);
	blk_mq_quiesce_queue(q);
	for (i = 0; i < config->num_conns; i++)
		nbd_conn_sync(config->conns[i]);
	blk_mq_tagset_busy_iter(&nbd->tag_set, nbd_fail_leftover, NULL);
	WRITE_ONCE(nbd->config, NULL);
	blk_mq_unquiesce_queue(q);
	blk_sync_queue(q);

	for (i = 0; i < config->num_conns; i++)
		nbd_conn_destroy(config->conns[i]);
	kfree(config->conns);

	if (test_bit(NBD_RT_STARTED, &config->flags)) {
		set_disk_ro(nbd->disk, false);
		nbd_default_qlimits(&lim, NBD_DEFAULT_BLKSIZE);
		blk_mq_freeze_queue(q);
		nbd_apply_qlimits(q, &lim);
		blk_mq_unfreeze_queue(q);
		dev_info(nbd_to_dev(nbd), "disconnected\n");
	}
	nbd->tag_set.timeout = 0;
	blk_queue_rq_timeout(q, NBD_DEFAULT_TIMEOUT);

	if (test_and_clear_bit(NBD_DEV_DESTROY_ON_DISCONNECT, &nbd->flags) &&
	    test_and_clear_bit(NBD_DEV_REGISTERED, &nbd->flags))
		nbd_put(nbd);

	put_pid(config->owner);
	kfree(config->backend);
	kfree(config);
}

/**
 * nbd_set_owner() - make the current task the one that owns the session
 * @config: the session
 *
 * It is the task /sys/block/nbdX/pid names, and its process may resize
 * the device over netlink without the backend identifier.  Called with
 * the device's config_lock held.
 */
void nbd_set_owner(struct nbd_config *config)
{
	config->pid = task_pid_nr(current);
	put_pid(config->owner);
	config->owner = get_pid(task_tgid(current));
}

/**
 * nbd_config_put() - drop a reference to the current session
 * @nbd: the device; the caller must not hold config_lock
 *
 * The last reference tears the session down.
 */
void nbd_config_put(struct nbd_device *nbd)
{
	if (!refcount_dec_and_mutex_lock(&nbd->config_refs, &nbd->config_lock))
		return;
	nbd_config_teardown(nbd);
	mutex_unlock(&nbd->config_lock);
	nbd_put(nbd);
	module_put(THIS_MODULE);
}
EXPORT_SYMBOL_IF_KUNIT(nbd_config_put);

/**
 * nbd_start_device() - let I/O flow on a configured session
 * @nbd: the device; the caller holds config_lock and nbd->config is set
 *
 * Return: 0 or a negative errno (with a message).
 */
int nbd_start_device(struct nbd_device *nbd)
{
	struct nbd_config *config = nbd->config;
	struct request_queue *q = nbd->disk->queue;
	struct nbd_qlimits lim;
	unsigned int i;
	int err;

	if (test_bit(NBD_RT_STARTED, &config->flags)) {
		dev_err(nbd_to_dev(nbd), "device is already running\n");
		return -EBUSY;
	}
	if (!config->num_conns) {
		dev_err(nbd_to_dev(nbd), "no socket was given\n");
		return -EINVAL;
	}
	if (config->num_conns > 1 &&
	    !(config->server_flags & NBD_FLAG_CAN_MULTI_CONN)) {
		dev_err(nbd_to_dev(nbd),
			"server does not support multiple connections (no CAN_MULTI_CONN flag): refusing %u connections\n",
			config->num_conns);
		return -EINVAL;
	}
	if (!IS_ALIGNED(config->bytesize, config->blksize)) {
		dev_err(nbd_to_dev(nbd),
			"size %llu is not a multiple of the block size %u\n",
			config->bytesize, config->blksize);
		return -EINVAL;
	}

	/* blk-mq caps this at the number of CPUs: see nbd_pick_conn() */
	if (nbd->tag_set.nr_hw_queues != config->num_conns)
		blk_mq_update_nr_hw_queues(&nbd->tag_set, config->num_conns);

	nbd_flags_to_qlimits(config->server_flags, config->blksize, &lim);
	nbd_constraints_to_qlimits(config->min_block, config->pref_block,
				   config->max_payload, &lim);
	blk_mq_freeze_queue(q);
	err = nbd_apply_qlimits(q, &lim);
	blk_mq_unfreeze_queue(q);
	if (err) {
		dev_err(nbd_to_dev(nbd), "cannot apply queue limits: %d\n",
			err);
		return err;
	}
	set_disk_ro(nbd->disk, config->server_flags & NBD_FLAG_READ_ONLY);

	nbd_set_owner(config);
	set_bit(NBD_RT_STARTED, &config->flags);
	for (i = 0; i < config->num_conns; i++)
		nbd_start_conn(config, config->conns[i]);

	if (!device_create_file(nbd_to_dev(nbd), &dev_attr_pid))
		set_bit(NBD_RT_HAS_PID_FILE, &config->flags);
	if (config->backend &&
	    !device_create_file(nbd_to_dev(nbd), &dev_attr_backend))
		set_bit(NBD_RT_HAS_BACKEND_FILE, &config->flags);
	nbd_dbg_dev_add(config);
	nbd_update_capacity(nbd, config->bytesize);
	dev_info(nbd_to_dev(nbd),
		 "connected: %llu bytes, block size %u, %u connection%s, flags %#x, %s replies\n",
		 config->bytesize, config->blksize, config->num_conns,
		 config->num_conns == 1 ? "" : "s", config->server_flags,
		 config->structured ? "structured" : "simple");
	if (config->min_block)
		dev_info(nbd_to_dev(nbd),
			 "keeping to the server's block sizes: minimum %u, preferred %u, maximum %u\n",
			 config->min_block, config->pref_block,
			 config->max_payload);
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_start_device);

/* Devices */

static int nbd_open(NBD_OPEN_ARGS)
{
	struct nbd_device *nbd = NBD_OPEN_DISK->private_data;

	if (!refcount_inc_not_zero(&nbd->refs))
		return -ENXIO;
	return 0;
}

static void nbd_release(NBD_RELEASE_ARGS)
{
	struct nbd_device *nbd = disk->private_data;
	struct nbd_config *config;
	bool disc = false, put = false;

	if (disk_openers(disk) == 0) {
		mutex_lock(&nbd->config_lock);
		config = nbd->config;
		if (config && test_bit(NBD_RT_HAS_CONFIG_REF, &config->flags)) {
			if (test_bit(NBD_RT_DISCONNECT_ON_CLOSE, &config->flags))
				disc = true;
			else if (!test_bit(NBD_RT_BOUND, &config->flags))
				/* an ioctl session dies with its last opener */
				put = true;
		}
		mutex_unlock(&nbd->config_lock);
		if (disc || put)
			nbd_disconnect_and_put(nbd, disc);
	}
	nbd_put(nbd);
}

static void nbd_free_disk(struct gendisk *disk)
{
	struct nbd_device *nbd = disk->private_data;

	kfree(nbd);
}

static const struct block_device_operations nbd_fops = {
	.owner		= THIS_MODULE,
	.open		= nbd_open,
	.release	= nbd_release,
	.ioctl		= nbd_ioctl,
	.compat_ioctl	= nbd_ioctl,
	.free_disk	= nbd_free_disk,
};

static void nbd_remove_workfn(struct work_struct *work)
{
	struct nbd_device *nbd = container_of(work, struct nbd_device,
					      remove_work);
	struct gendisk *disk = nbd->disk;

	del_gendisk(disk);
	blk_mq_free_tag_set(&nbd->tag_set);
	/* Only now may the index be reused: the sysfs names are gone. */
	mutex_lock(&nbd_index_mutex);
	idr_remove(&nbd_index_idr, nbd->index);
	mutex_unlock(&nbd_index_mutex);
	destroy_workqueue(nbd->io_wq);
	put_disk(disk);		/* frees nbd */
}

/**
 * nbd_put() - drop a reference to a device
 * @nbd: the device
 *
 * The last reference deletes the device, from a work item.
 */
void nbd_put(struct nbd_device *nbd)
{
	if (refcount_dec_and_test(&nbd->refs))
		queue_work(nbd_del_wq, &nbd->remove_work);
}
EXPORT_SYMBOL_IF_KUNIT(nbd_put);

static struct nbd_device *nbd_dev_add(int index)
{
	struct nbd_qlimits lim;
	struct nbd_device *nbd;
	struct gendisk *disk;
	int err = -ENOMEM;

	nbd = kzalloc(sizeof(*nbd), GFP_KERNEL);
	if (!nbd)
		goto out;

	nbd->tag_set.ops = &nbd_mq_ops;
	nbd->tag_set.nr_hw_queues = 1;
	nbd->tag_set.queue_depth = NBD_QUEUE_DEPTH;
	nbd->tag_set.numa_node = NUMA_NO_NODE;
	nbd->tag_set.cmd_size = sizeof(struct nbd_cmd);
	/*
	 * BLOCKING: ->queue_rq may write to the socket itself.  No I/O
	 * scheduler by default: the server orders the I/O, and a local
	 * elevator only adds latency in front of it (with more than one
	 * connection blk-mq picks none anyway).
	 */
	nbd->tag_set.flags = BLK_MQ_F_SHOULD_MERGE | BLK_MQ_F_BLOCKING |
			     BLK_MQ_F_NO_SCHED_BY_DEFAULT;
	nbd->tag_set.driver_data = nbd;
	INIT_WORK(&nbd->remove_work, nbd_remove_workfn);
	INIT_WORK(&nbd->config_put_work, nbd_config_put_workfn);
	INIT_DELAYED_WORK(&nbd->dead_work, nbd_dead_workfn);
	mutex_init(&nbd->config_lock);
	refcount_set(&nbd->config_refs, 0);
	/* Lookups skip the device until it is fully set up. */
	refcount_set(&nbd->refs, 0);

	err = blk_mq_alloc_tag_set(&nbd->tag_set);
	if (err)
		goto out_free_nbd;

	mutex_lock(&nbd_index_mutex);
	if (index >= 0) {
		err = idr_alloc(&nbd_index_idr, nbd, index, index + 1,
				GFP_KERNEL);
		if (err == -ENOSPC)
			err = -EEXIST;
	} else {
		err = idr_alloc(&nbd_index_idr, nbd, 0,
				(MINORMASK >> part_shift) + 1, GFP_KERNEL);
	}
	if (err >= 0)
		nbd->index = err;
	mutex_unlock(&nbd_index_mutex);
	if (err < 0)
		goto out_free_tags;

	/*
	 * Senders and TCP receivers: short work items, on a workqueue of the
	 * device's own with a rescuer, so that under memory pressure each
	 * device makes progress on its own.  Receivers that wait in recvmsg
	 * (AF_UNIX) have one per connection (nbd_conn_create()).
	 */
	nbd->io_wq = alloc_workqueue("nbd%d-io", WQ_MEM_RECLAIM | WQ_HIGHPRI,
				     0, nbd->index);
	if (!nbd->io_wq) {
		err = -ENOMEM;
		goto out_free_idr;
	}

	nbd_default_qlimits(&lim, NBD_DEFAULT_BLKSIZE);
	disk = nbd_alloc_disk(&nbd->tag_set, &lim, nbd);
	if (IS_ERR(disk)) {
		err = PTR_ERR(disk);
		goto out_free_wq;
	}
	nbd->disk = disk;
	blk_queue_rq_timeout(disk->queue, NBD_DEFAULT_TIMEOUT);

	disk->major = NBD_MAJOR;
	disk->first_minor = nbd->index << part_shift;
	disk->minors = 1 << part_shift;
	disk->fops = &nbd_fops;
	disk->private_data = nbd;
	if (!max_part)
		disk->flags |= GENHD_FL_NO_PART;
	sprintf(disk->disk_name, "nbd%d", nbd->index);

	err = add_disk(disk);
	if (err)
		goto out_put_disk;

	set_bit(NBD_DEV_REGISTERED, &nbd->flags);
	refcount_set(&nbd->refs, 1);
	return nbd;

out_put_disk:
	put_disk(disk);		/* does not free nbd: private_data is set */
out_free_wq:
	destroy_workqueue(nbd->io_wq);
out_free_idr:
	mutex_lock(&nbd_index_mutex);
	idr_remove(&nbd_index_idr, nbd->index);
	mutex_unlock(&nbd_index_mutex);
out_free_tags:
	blk_mq_free_tag_set(&nbd->tag_set);
out_free_nbd:
	kfree(nbd);
out:
	return ERR_PTR(err);
}

/**
 * nbd_lookup_get() - find a device by index and take a reference
 * @index: the X in nbdX
 *
 * Return: the device, or NULL when there is none (or it is going away).
 */
struct nbd_device *nbd_lookup_get(int index)
{
	struct nbd_device *nbd;

	mutex_lock(&nbd_index_mutex);
	nbd = idr_find(&nbd_index_idr, index);
	if (nbd && !refcount_inc_not_zero(&nbd->refs))
		nbd = NULL;
	mutex_unlock(&nbd_index_mutex);
	return nbd;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_lookup_get);

static struct nbd_device *nbd_get_free(void)
{
	struct nbd_device *nbd;
	int id;

	mutex_lock(&nbd_index_mutex);
	idr_for_each_entry(&nbd_index_idr, nbd, id) {
		if (READ_ONCE(nbd->config) ||
		    !test_bit(NBD_DEV_REGISTERED, &nbd->flags))
			continue;
		if (refcount_inc_not_zero(&nbd->refs))
			break;
	}
	mutex_unlock(&nbd_index_mutex);
	return nbd;
}

/**
 * nbd_find_or_create() - the device a netlink CONNECT is for
 * @index: the index asked for, or -1 for any free device
 *
 * Return: the device with a reference held, or an ERR_PTR.
 */
struct nbd_device *nbd_find_or_create(int index)
{
	struct nbd_device *nbd;
	int tries;

	if (index >= 0 && index > (MINORMASK >> part_shift))
		return ERR_PTR(-EINVAL);

	for (tries = 0; tries < 3; tries++) {
		nbd = index < 0 ? nbd_get_free() : nbd_lookup_get(index);
		if (nbd)
			return nbd;
		nbd = nbd_dev_add(index);
		if (!IS_ERR(nbd)) {
			refcount_inc(&nbd->refs);
			return nbd;
		}
		if (PTR_ERR(nbd) != -EEXIST)
			return nbd;
		/* That index is being deleted: wait for it, then retry. */
		flush_workqueue(nbd_del_wq);
	}
	return ERR_PTR(-EBUSY);
}
EXPORT_SYMBOL_IF_KUNIT(nbd_find_or_create);

/**
 * nbd_device_connected() - whether a device has a started session
 * @nbd: the device
 *
 * Return: true while a session is started.
 */
bool nbd_device_connected(struct nbd_device *nbd)
{
	bool ret;

	/*
	 * Not config_lock: STATUS must answer while another task holds it
	 * (a connect being set up).  A config reference keeps the session.
	 */
	if (!refcount_inc_not_zero(&nbd->config_refs))
		return false;
	ret = test_bit(NBD_RT_STARTED, &READ_ONCE(nbd->config)->flags);
	nbd_config_put(nbd);
	return ret;
}

/**
 * nbd_get_next() - iterate over the registered devices
 * @id: in: the first index to look at; out: the index found
 *
 * Callers start with *@id = 0, and after each device put it and look
 * again from *@id + 1.
 *
 * Return: the next device with a reference held, or NULL at the end.
 */
struct nbd_device *nbd_get_next(int *id)
{
	struct nbd_device *nbd;

	mutex_lock(&nbd_index_mutex);
	nbd = idr_get_next(&nbd_index_idr, id);
	while (nbd && !refcount_inc_not_zero(&nbd->refs)) {
		(*id)++;
		nbd = idr_get_next(&nbd_index_idr, id);
	}
	mutex_unlock(&nbd_index_mutex);
	return nbd;
}

/* Module */

static void nbd_dev_remove_all(void)
{
	struct nbd_device *nbd, *found;
	int id;

	do {
		found = NULL;
		mutex_lock(&nbd_index_mutex);
		idr_for_each_entry(&nbd_index_idr, nbd, id) {
			if (test_and_clear_bit(NBD_DEV_REGISTERED, &nbd->flags)) {
				found = nbd;
				break;
			}
		}
		mutex_unlock(&nbd_index_mutex);
		if (found)
			nbd_put(found);
	} while (found);
	flush_workqueue(nbd_del_wq);
}

static int __init nbd_init(void)
{
	int i, err;

	if (max_part < 0) {
		pr_err("max_part must be >= 0\n");
		return -EINVAL;
	}
	if (max_part > 0) {
		part_shift = fls(max_part);
		/*
		 * The partition count is rounded up to a power of two minus
		 * one, the whole disk taking the first minor.
		 */
		max_part = (1UL << part_shift) - 1;
	}
	if ((1UL << part_shift) > DISK_MAX_PARTS) {
		pr_err("max_part must be below %d\n", DISK_MAX_PARTS);
		return -EINVAL;
	}
	if (nbds_max < 0 || nbds_max > 1L << (MINORBITS - part_shift)) {
		pr_err("nbds_max must be from 0 to %ld with max_part=%d\n",
		       1L << (MINORBITS - part_shift), max_part);
		return -EINVAL;
	}

	err = register_blkdev(NBD_MAJOR, "nbd");
	if (err)
		return err;

	err = -ENOMEM;
	nbd_del_wq = alloc_workqueue("nbd-del", WQ_UNBOUND, 0);
	if (!nbd_del_wq)
		goto out_unregister;

	nbd_dbg_init();
	for (i = 0; i < nbds_max; i++) {
		struct nbd_device *nbd = nbd_dev_add(i);

		if (IS_ERR(nbd)) {
			pr_warn("cannot create nbd%d: %ld\n", i, PTR_ERR(nbd));
			break;
		}
	}

	/* Last: userspace may configure devices from here on. */
	err = nbd_genl_init();
	if (err)
		goto out_devices;
	pr_info("loaded, version %s\n", NBD_DRIVER_VERSION);
	return 0;

out_devices:
	nbd_dev_remove_all();
	nbd_dbg_exit();
	destroy_workqueue(nbd_del_wq);
out_unregister:
	unregister_blkdev(NBD_MAJOR, "nbd");
	return err;
}

static void __exit nbd_exit(void)
{
	/* First: no netlink request may find a device from here on. */
	nbd_genl_exit();
	nbd_dev_remove_all();
	nbd_dbg_exit();
	destroy_workqueue(nbd_del_wq);
	idr_destroy(&nbd_index_idr);
	unregister_blkdev(NBD_MAJOR, "nbd");
}

module_init(nbd_init);
module_exit(nbd_exit);

MODULE_DESCRIPTION("Network Block Device client");
MODULE_LICENSE("GPL");
MODULE_VERSION(NBD_DRIVER_VERSION);
MODULE_ALIAS_BLOCKDEV_MAJOR(NBD_MAJOR);
