/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Network Block Device driver: private definitions shared by its files.
 *
 * Objects and their lifetimes:
 *
 * struct nbd_device: one /dev/nbdX.  Reference counted by @refs: one
 *   reference while the device is registered (created at module load or
 *   by a netlink CONNECT), one per opener, one per configuration, and
 *   short-lived ones taken by lookups.  When the last one goes, the disk
 *   is deleted from a work item; the structure itself is freed when the
 *   gendisk is released.
 *
 * struct nbd_config: one connected (or being set up) session: the
 *   sockets, size, flags and timeouts.  Reference counted by
 *   nbd_device.config_refs: one "owner" reference (NBD_RT_HAS_CONFIG_REF)
 *   dropped by a disconnect, one per running receive worker, one for a
 *   task sleeping in NBD_DO_IT and short-lived ones.  The last put tears
 *   the session down under config_lock.
 *
 * struct nbd_cmd: the per-request data in the blk-mq PDU.
 *
 * struct nbd_conn: one connection; see transport.h.
 *
 * Locking: nbd_index_mutex protects the index IDR and device creation.
 * nbd_device.config_lock serialises every configuration change.  Receive
 * workers never take config_lock except when they drop the last config
 * reference, so a config_lock holder that still owns a config reference
 * may wait for them.  nbd_cmd.lock orders the sender, the receiver and
 * the connection-failure reaper on one request.
 */
#ifndef _NBD_H
#define _NBD_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/llist.h>
#include <linux/mutex.h>
#include <linux/refcount.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <kunit/visibility.h>

#include "compat.h"
#include "proto.h"

#define NBD_DRIVER_VERSION	"1.0.0"

#define NBD_DEFAULT_BLKSIZE	1024
#define NBD_MAX_CONNECTIONS	64
#define NBD_QUEUE_DEPTH		128
#define NBD_MAX_HW_SECTORS	65536	/* 32 MiB per request */
#define NBD_DEFAULT_TIMEOUT	(30 * HZ)
#define NBD_MAX_TIMEOUT_SECS	(UINT_MAX / HZ)

struct nbd_conn;
struct netlink_ext_ack;
struct socket;
struct dentry;

/* nbd_config.flags */
enum {
	NBD_RT_HAS_CONFIG_REF,		/* the owner reference is held */
	NBD_RT_BOUND,			/* configured over netlink */
	NBD_RT_STARTED,			/* I/O may flow */
	NBD_RT_DISCONNECT_REQUESTED,	/* the user asked to disconnect */
	NBD_RT_DISCONNECT_ON_CLOSE,	/* NBD_CFLAG_DISCONNECT_ON_CLOSE */
	NBD_RT_TIMEDOUT,		/* a request timed out */
	NBD_RT_HAS_PID_FILE,
	NBD_RT_HAS_BACKEND_FILE,
	NBD_RT_TEARDOWN,		/* the last reference is gone */
};

/* nbd_device.flags */
enum {
	NBD_DEV_REGISTERED,		/* holds the registration reference */
	NBD_DEV_DESTROY_ON_DISCONNECT,	/* NBD_CFLAG_DESTROY_ON_DISCONNECT */
};

/**
 * struct nbd_config - one session with a server
 * @nbd: the device
 * @flags: NBD_RT_* bits
 * @server_flags: transmission flags of the export (NBD_FLAG_*)
 * @bytesize: size of the export in bytes
 * @blksize: block size in bytes
 * @conns: the connections, @num_conns of them (one hardware queue each)
 * @num_conns: number of connections
 * @live_conns: connections not yet failed
 * @recv_threads: running receive workers
 * @recv_wq: woken when a receive worker ends
 * @structured: the server sends structured replies (negotiated by the
 *	helper with NBD_OPT_STRUCTURED_REPLY)
 * @min_block: the server's minimum block size (NBD_INFO_BLOCK_SIZE, asked
 *	for in NBD_OPT_GO), 0 when it gave none: then no constraint holds
 * @pref_block: its preferred block size (with @min_block)
 * @max_payload: its maximum payload (with @min_block; 0: no limit)
 * @dead_conn_timeout: how long I/O waits for a reconnect (jiffies)
 * @dead_since: when the last live connection failed (jiffies)
 * @backend: backend identifier given over netlink, or NULL
 * @setup_task: the task that configures the device through ioctls
 * @pid: the task that started the device, or the last to re-attach it
 *	(a RECONFIGURE with sockets and the backend identifier)
 * @owner: that task's process (a reference, so that a reused pid is not
 *	taken for it): it may resize the device without repeating the
 *	backend identifier
 * @dbg_dir: debugfs directory while started
 */
struct nbd_config {
	struct nbd_device *nbd;
	unsigned long flags;
	u32 server_flags;
	u64 bytesize;
	unsigned int blksize;

	struct nbd_conn **conns;
	unsigned int num_conns;
	atomic_t live_conns;
	atomic_t recv_threads;
	wait_queue_head_t recv_wq;

	bool structured;
	u32 min_block;
	u32 pref_block;
	u32 max_payload;

	unsigned long dead_conn_timeout;
	unsigned long dead_since;

	char *backend;
	struct task_struct *setup_task;
	pid_t pid;
	struct pid *owner;
	struct dentry *dbg_dir;
};

/**
 * struct nbd_device - one /dev/nbdX
 * @tag_set: blk-mq tag set, one hardware queue per connection
 * @disk: the gendisk
 * @index: the X in nbdX
 * @flags: NBD_DEV_* bits
 * @refs: lifetime of the device
 * @config_lock: serialises configuration changes
 * @config_refs: lifetime of @config
 * @config: the current session or NULL
 * @io_wq: this device's senders and TCP receivers (WQ_MEM_RECLAIM: a
 *	rescuer of its own, so that a stalled server of another device
 *	cannot starve this one under memory pressure)
 * @remove_work: deletes the disk once @refs is gone
 * @config_put_work: drops a config reference on behalf of the timeout
 *	handler, which must never tear the session down itself
 * @dead_work: ends a netlink session whose connections all died and
 *	were not replaced in time; holds a config reference while queued
 */
struct nbd_device {
	struct blk_mq_tag_set tag_set;
	struct gendisk *disk;
	int index;
	unsigned long flags;
	refcount_t refs;

	struct mutex config_lock;	/* serialises configuration */
	refcount_t config_refs;
	struct nbd_config *config;

	struct workqueue_struct *io_wq;
	struct work_struct remove_work;
	struct work_struct config_put_work;
	struct delayed_work dead_work;
};

/* nbd_cmd.state, protected by nbd_cmd.lock */
enum nbd_cmd_state {
	NBD_CMD_IDLE,		/* not ours: completed, requeued or new */
	NBD_CMD_QUEUED,		/* on a connection's send list */
	NBD_CMD_SENT,		/* (being) written to the socket */
};

/**
 * struct nbd_cmd - per-request driver data (blk-mq PDU)
 * @lentry: entry on the connection's send list
 * @nbd: the device
 * @conn: the connection the request was given to
 * @lock: orders sending, receiving and reaping of this request; taken
 *	in softirq by a receiver parsing in data_ready, so _bh elsewhere
 * @state: enum nbd_cmd_state
 * @retry: on the last put, hand the request back instead of ending it
 * @send_failed: the current transmission could not be written whole:
 *	whatever a reply said, the request is handed back
 * @status: completion status
 * @refs: who still uses the request: one for whoever ends it (the
 *	receiver of the reply, the reaper of a dead connection or the
 *	sender that finds its connection dead), one for the sender while
 *	it writes the request; the last put completes it
 * @gen: generation of the current transmission (high half of the cookie)
 * @wire: the command as it goes on the wire
 * @sr_started: a chunk of a structured reply to this transmission came
 * @sr_error: the first error a chunk gave (an NBD error number), or 0
 * @sr_ranges: what the chunks of a read have covered
 *
 * The @sr_ fields are the receiver's alone: reset when the request is
 * sent, read and written only by the receiver of its connection, which
 * also is the only one to end a request that is on the wire.
 *
 * A reply may arrive (from a hostile server, or over a fast socket just
 * as the sender's last write returns) while the sender still walks the
 * request's pages: the reference the sender holds keeps the request from
 * completing under it.
 */
struct nbd_cmd {
	struct llist_node lentry;
	struct nbd_device *nbd;
	struct nbd_conn *conn;
	spinlock_t lock;		/* see nbd_cmd_state */
	u8 state;
	bool retry;
	bool send_failed;
	blk_status_t status;
	atomic_t refs;
	u32 gen;
	struct nbd_wire_cmd wire;
	bool sr_started;
	u32 sr_error;
	struct nbd_sr_ranges sr_ranges;
};

static inline struct device *nbd_to_dev(struct nbd_device *nbd)
{
	return disk_to_dev(nbd->disk);
}

/* main.c */
struct nbd_device *nbd_lookup_get(int index);
struct nbd_device *nbd_find_or_create(int index);
void nbd_put(struct nbd_device *nbd);
struct nbd_config *nbd_config_create(struct nbd_device *nbd);
void nbd_config_put(struct nbd_device *nbd);
void nbd_set_owner(struct nbd_config *config);
int nbd_check_sock(struct nbd_device *nbd, struct socket *sock,
		   struct netlink_ext_ack *extack);
int nbd_add_sock(struct nbd_config *config, struct socket *sock,
		 struct netlink_ext_ack *extack);
int nbd_add_socket(struct nbd_config *config, int fd, bool netlink,
		   struct netlink_ext_ack *extack);
void nbd_clear_conns(struct nbd_config *config);
int nbd_reconnect_socket(struct nbd_config *config, int fd,
			 struct netlink_ext_ack *extack);
int nbd_check_blksize(struct nbd_device *nbd, u64 blksize);
int nbd_check_constraints(struct nbd_device *nbd, u32 min, u32 pref, u32 max,
			  u64 blksize, struct netlink_ext_ack *extack);
int nbd_set_size(struct nbd_config *config, u64 bytesize, u64 blksize);
void nbd_update_capacity(struct nbd_device *nbd, u64 bytesize);
void nbd_set_timeout(struct nbd_device *nbd, u64 seconds);
int nbd_start_device(struct nbd_device *nbd);
void nbd_shutdown_conns(struct nbd_config *config);
void nbd_wait_receivers(struct nbd_device *nbd, struct nbd_config *config);
void nbd_disconnect_start(struct nbd_config *config);
void nbd_disconnect_wait(struct nbd_device *nbd, struct nbd_config *config);
void nbd_disconnect_and_put(struct nbd_device *nbd, bool send_disc);
void nbd_cmd_retry_or_fail(struct nbd_cmd *cmd, struct nbd_config *config,
			   blk_status_t status);
void nbd_cmd_end(struct nbd_cmd *cmd, blk_status_t status);
void nbd_cmd_finish(struct nbd_cmd *cmd, blk_status_t status, bool retry);
void nbd_cmd_put(struct nbd_cmd *cmd);
void nbd_conn_lost(struct nbd_conn *conn);
bool nbd_device_connected(struct nbd_device *nbd);
struct nbd_device *nbd_get_next(int *id);

#if IS_ENABLED(CONFIG_KUNIT)
struct genl_family;
struct nbd_conn *nbd_pick_conn(struct nbd_config *config, unsigned int nr_hw,
			       unsigned int h, unsigned int tag);
void nbd_flags_to_qlimits(u32 flags, unsigned int blksize,
			  struct nbd_qlimits *l);
void nbd_constraints_to_qlimits(u32 min, u32 pref, u32 max,
				struct nbd_qlimits *l);
const struct genl_family *nbd_genl_kunit_family(void);
#endif

/* ioctl.c */
int nbd_ioctl(struct block_device *bdev, nbd_mode_t mode, unsigned int cmd,
	      unsigned long arg);

/* netlink.c */
int nbd_genl_init(void);
void nbd_genl_exit(void);
void nbd_genl_link_dead(int index);

/* debugfs.c */
#if IS_ENABLED(CONFIG_DEBUG_FS)
void nbd_dbg_init(void);
void nbd_dbg_exit(void);
void nbd_dbg_dev_add(struct nbd_config *config);
void nbd_dbg_dev_remove(struct nbd_config *config);
#else
static inline void nbd_dbg_init(void) { }
static inline void nbd_dbg_exit(void) { }
static inline void nbd_dbg_dev_add(struct nbd_config *config) { }
static inline void nbd_dbg_dev_remove(struct nbd_config *config) { }
#endif

#endif /* _NBD_H */
