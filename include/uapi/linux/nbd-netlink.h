/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Network Block Device: generic netlink interface.
 *
 * ABI-compatible with upstream Linux.  Family NBD_GENL_FAMILY_NAME,
 * version NBD_GENL_VERSION, one multicast group NBD_GENL_MCAST_GROUP_NAME
 * carrying NBD_CMD_LINK_DEAD.
 *
 * Attribute layout:
 *
 *   NBD_ATTR_SOCKETS (nested)
 *     NBD_SOCK_ITEM (nested), one per connection
 *       NBD_SOCK_FD (u32): a connected TCP or UNIX stream socket
 *
 *   NBD_ATTR_DEVICE_LIST (nested, in STATUS replies)
 *     NBD_DEVICE_ITEM (nested), one per device
 *       NBD_DEVICE_INDEX (u32)
 *       NBD_DEVICE_CONNECTED (u8)
 *
 * This driver's own additions (not upstream's) travel in one attribute,
 * NBD_ATTR_EXT, far above any number upstream will reach, with its own
 * numbering inside (NBD_EXT_*) and NBD_EXT_MAGIC first.  A future
 * upstream attribute can never be taken for it: the driver acts on the
 * nest only when it carries NBD_EXT_MAGIC with NBD_EXT_MAGIC_VALUE, and
 * otherwise ignores it as it ignores every attribute it does not know.
 * The stock module ignores the whole nest, so a tool must ask first
 * whether the module understands it (see NBD_EXT_FEATURES):
 *
 *   NBD_ATTR_EXT (nested)
 *     NBD_EXT_MAGIC (u32): NBD_EXT_MAGIC_VALUE
 *     CONNECT, RECONFIGURE with SOCKETS:
 *       NBD_EXT_REPLY_MODE (u32): NBD_EXT_REPLY_* negotiated on the
 *         sockets (absent: simple replies)
 *       NBD_EXT_BLOCK_MIN, NBD_EXT_BLOCK_PREF, NBD_EXT_BLOCK_MAX (u32):
 *         the server's NBD_INFO_BLOCK_SIZE, all three or none, given only
 *         when it was asked for in NBD_OPT_GO: the driver then never sends
 *         a request that breaks them
 *     STATUS replies:
 *       NBD_EXT_FEATURES (u64): NBD_EXT_FEAT_* this module supports
 *       NBD_EXT_VERSION (string): the module's version
 */
#ifndef _UAPILINUX_NBD_NETLINK_H
#define _UAPILINUX_NBD_NETLINK_H

#define NBD_GENL_FAMILY_NAME		"nbd"
#define NBD_GENL_VERSION		0x1
#define NBD_GENL_MCAST_GROUP_NAME	"nbd_mc_group"

/* Configuration policy attributes, used for CONNECT */
enum {
	NBD_ATTR_UNSPEC,
	NBD_ATTR_INDEX,			/* u32; absent or -1: any free device */
	NBD_ATTR_SIZE_BYTES,		/* u64 */
	NBD_ATTR_BLOCK_SIZE_BYTES,	/* u64: power of 2, 512..PAGE_SIZE */
	NBD_ATTR_TIMEOUT,		/* u64: per-request timeout, seconds */
	NBD_ATTR_SERVER_FLAGS,		/* u64: NBD_FLAG_* */
	NBD_ATTR_CLIENT_FLAGS,		/* u64: NBD_CFLAG_* */
	NBD_ATTR_SOCKETS,		/* nested, see above */
	NBD_ATTR_DEAD_CONN_TIMEOUT,	/* u64: wait for a reconnect, seconds */
	NBD_ATTR_DEVICE_LIST,		/* nested, see above */
	NBD_ATTR_BACKEND_IDENTIFIER,	/* string */
	__NBD_ATTR_MAX,
};
#define NBD_ATTR_MAX (__NBD_ATTR_MAX - 1)

/* This driver's additions (see the top of the file). */
#define NBD_ATTR_EXT		0x3f00
#define NBD_EXT_MAGIC_VALUE	0x6e626478	/* "nbdx" */

enum {
	NBD_EXT_UNSPEC,
	NBD_EXT_MAGIC,		/* u32: NBD_EXT_MAGIC_VALUE */
	NBD_EXT_FEATURES,	/* u64: NBD_EXT_FEAT_*, in STATUS replies */
	NBD_EXT_VERSION,	/* string, in STATUS replies */
	NBD_EXT_REPLY_MODE,	/* u32: NBD_EXT_REPLY_* */
	NBD_EXT_BLOCK_MIN,	/* u32: minimum block size */
	NBD_EXT_BLOCK_PREF,	/* u32: preferred block size */
	NBD_EXT_BLOCK_MAX,	/* u32: maximum payload */
	__NBD_EXT_MAX,
};
#define NBD_EXT_MAX (__NBD_EXT_MAX - 1)

/* NBD_EXT_REPLY_MODE */
#define NBD_EXT_REPLY_SIMPLE		0
#define NBD_EXT_REPLY_STRUCTURED	1	/* NBD_OPT_STRUCTURED_REPLY */

/* NBD_EXT_FEATURES */
#define NBD_EXT_FEAT_STRUCTURED_REPLY	(1ULL << 0)	/* REPLY_MODE 1 */
#define NBD_EXT_FEAT_BLOCK_SIZE		(1ULL << 1)	/* BLOCK_MIN... */
/*
 * Kernel TLS sockets: records other than data (alerts, post-handshake
 * messages) end the connection with a log line naming them, instead of
 * an I/O error; half-configured kTLS sockets are refused.
 */
#define NBD_EXT_FEAT_KTLS		(1ULL << 2)

/*
 * This is the format for multiple sockets with NBD_ATTR_SOCKETS
 *
 * [NBD_ATTR_SOCKETS]
 *   [NBD_SOCK_ITEM]
 *     [NBD_SOCK_FD]
 *   [NBD_SOCK_ITEM]
 *     [NBD_SOCK_FD]
 */
enum {
	NBD_SOCK_ITEM_UNSPEC,
	NBD_SOCK_ITEM,
	__NBD_SOCK_ITEM_MAX,
};
#define NBD_SOCK_ITEM_MAX (__NBD_SOCK_ITEM_MAX - 1)

enum {
	NBD_SOCK_UNSPEC,
	NBD_SOCK_FD,
	__NBD_SOCK_MAX,
};
#define NBD_SOCK_MAX (__NBD_SOCK_MAX - 1)

/* Device list, in NBD_CMD_STATUS replies */
enum {
	NBD_DEVICE_ITEM_UNSPEC,
	NBD_DEVICE_ITEM,
	__NBD_DEVICE_ITEM_MAX,
};
#define NBD_DEVICE_ITEM_MAX (__NBD_DEVICE_ITEM_MAX - 1)

enum {
	NBD_DEVICE_UNSPEC,
	NBD_DEVICE_INDEX,
	NBD_DEVICE_CONNECTED,
	__NBD_DEVICE_MAX,
};
#define NBD_DEVICE_ATTR_MAX (__NBD_DEVICE_MAX - 1)

enum {
	NBD_CMD_UNSPEC,
	NBD_CMD_CONNECT,
	NBD_CMD_DISCONNECT,
	NBD_CMD_RECONFIGURE,
	NBD_CMD_LINK_DEAD,	/* multicast only, carries NBD_ATTR_INDEX */
	NBD_CMD_STATUS,
	__NBD_CMD_MAX,
};
#define NBD_CMD_MAX	(__NBD_CMD_MAX - 1)

#endif /* _UAPILINUX_NBD_NETLINK_H */
