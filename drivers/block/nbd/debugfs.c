// SPDX-License-Identifier: GPL-2.0
/*
 * Network Block Device driver: debugfs files.
 *
 * /sys/kernel/debug/nbd/nbdX/ exists exactly while the device is started
 * and holds tasks, size_bytes, timeout, blocksize and flags, as upstream,
 * and protocol: the reply mode and the server's block size constraints.
 * The files only read the session: its teardown removes them (and waits
 * for readers) before it frees anything, so they take no lock.
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "nbd.h"
#include "transport.h"

static struct dentry *nbd_dbg_root;

static int nbd_dbg_tasks_show(struct seq_file *s, void *unused)
{
	struct nbd_config *config = s->private;
	unsigned int i;

	seq_printf(s, "recv: %d\n", config->pid);
	for (i = 0; i < config->num_conns; i++) {
		struct nbd_conn *conn = config->conns[i];

		seq_printf(s, "conn%u: %s, %llu requests sent, %llu replies received\n",
			   i, nbd_conn_alive(conn) ? "alive" : "dead",
			   READ_ONCE(conn->requests_sent),
			   READ_ONCE(conn->replies_received));
		if (config->structured)
			seq_printf(s, "conn%u: %llu structured reply chunks, %llu holes (%llu bytes), %llu error chunks\n",
				   i, READ_ONCE(conn->chunks_received),
				   READ_ONCE(conn->holes_received),
				   READ_ONCE(conn->hole_bytes),
				   READ_ONCE(conn->error_chunks));
		if (conn->rx_read_sock)
			seq_printf(s, "conn%u: receiver ran %llu times in data_ready, %llu in a worker\n",
				   i, READ_ONCE(conn->rx_inline_runs),
				   READ_ONCE(conn->rx_runs));
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nbd_dbg_tasks);

static int nbd_dbg_timeout_show(struct seq_file *s, void *unused)
{
	struct nbd_config *config = s->private;

	seq_printf(s, "%u\n", config->nbd->tag_set.timeout / HZ);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nbd_dbg_timeout);

/* What was negotiated with the server beyond the transmission flags. */
static int nbd_dbg_protocol_show(struct seq_file *s, void *unused)
{
	struct nbd_config *config = s->private;
	unsigned int i;

	seq_printf(s, "replies: %s\n",
		   config->structured ? "structured" : "simple");
	if (config->min_block)
		seq_printf(s, "block_size_constraints: minimum %u preferred %u maximum %u\n",
			   config->min_block, config->pref_block,
			   config->max_payload);
	else
		seq_puts(s, "block_size_constraints: none\n");
	for (i = 0; i < config->num_conns; i++)
		seq_printf(s, "conn%u: tls: %s\n", i, config->conns[i]->tls_desc);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nbd_dbg_protocol);

static const char * const nbd_flag_names[] = {
	"HAS_FLAGS", "READ_ONLY", "SEND_FLUSH", "SEND_FUA", "ROTATIONAL",
	"SEND_TRIM", "SEND_WRITE_ZEROES", "SEND_DF", "CAN_MULTI_CONN",
	"SEND_RESIZE", "SEND_CACHE", "SEND_FAST_ZERO", "BLOCK_STAT_PAYLOAD",
};

static int nbd_dbg_flags_show(struct seq_file *s, void *unused)
{
	struct nbd_config *config = s->private;
	u32 flags = config->server_flags;
	unsigned int i;

	seq_printf(s, "Hex: 0x%08x\n\n", flags);
	seq_puts(s, "Known flags:\n");
	for (i = 0; i < ARRAY_SIZE(nbd_flag_names); i++)
		if (flags & BIT(i))
			seq_printf(s, "%s\n", nbd_flag_names[i]);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(nbd_dbg_flags);

/**
 * nbd_dbg_dev_add() - create a started device's debugfs directory
 * @config: the session; the caller holds config_lock
 */
void nbd_dbg_dev_add(struct nbd_config *config)
{
	struct dentry *dir;

	if (IS_ERR_OR_NULL(nbd_dbg_root))
		return;
	dir = debugfs_create_dir(config->nbd->disk->disk_name, nbd_dbg_root);
	if (IS_ERR(dir))
		return;
	config->dbg_dir = dir;
	debugfs_create_file("tasks", 0444, dir, config, &nbd_dbg_tasks_fops);
	debugfs_create_u64("size_bytes", 0444, dir, &config->bytesize);
	debugfs_create_file("timeout", 0444, dir, config,
			    &nbd_dbg_timeout_fops);
	debugfs_create_u32("blocksize", 0444, dir, &config->blksize);
	debugfs_create_file("flags", 0444, dir, config, &nbd_dbg_flags_fops);
	debugfs_create_file("protocol", 0444, dir, config,
			    &nbd_dbg_protocol_fops);
}

/**
 * nbd_dbg_dev_remove() - remove a device's debugfs directory
 * @config: the session; the caller holds config_lock
 */
void nbd_dbg_dev_remove(struct nbd_config *config)
{
	debugfs_remove_recursive(config->dbg_dir);
	config->dbg_dir = NULL;
}

/**
 * nbd_dbg_init() - create /sys/kernel/debug/nbd
 */
void nbd_dbg_init(void)
{
	nbd_dbg_root = debugfs_create_dir("nbd", NULL);
}

/**
 * nbd_dbg_exit() - remove /sys/kernel/debug/nbd
 */
void nbd_dbg_exit(void)
{
	debugfs_remove_recursive(nbd_dbg_root);
	nbd_dbg_root = NULL;
}
