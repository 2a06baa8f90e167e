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
