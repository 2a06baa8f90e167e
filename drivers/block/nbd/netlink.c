// SPDX-License-Identifier: GPL-2.0
/*
 * Network Block Device driver: the generic netlink interface.
 *
 * Family "nbd", version 1, as upstream: CONNECT, DISCONNECT, RECONFIGURE
 * and STATUS requests, and LINK_DEAD notifications on the multicast group
 * "nbd_mc_group".  Attribute validation is as lenient as upstream's
 * (unknown attributes are ignored) so that existing tools keep working,
 * but every value that is used is checked.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <net/genetlink.h>

/* This tree's uapi header, not the target kernel's: see proto.h. */
#include "../../../include/uapi/linux/nbd-netlink.h"
#include "nbd.h"
#include "transport.h"

#define NBD_KNOWN_CLIENT_FLAGS \
	(NBD_CFLAG_DESTROY_ON_DISCONNECT | NBD_CFLAG_DISCONNECT_ON_CLOSE)
#define NBD_MAX_BACKEND_LEN	256
#define NBD_CONNECT_TRIES	8

static const struct nla_policy nbd_attr_policy[NBD_ATTR_MAX + 1] = {
	[NBD_ATTR_INDEX]		= { .type = NLA_U32 },
	[NBD_ATTR_SIZE_BYTES]		= { .type = NLA_U64 },
	[NBD_ATTR_BLOCK_SIZE_BYTES]	= { .type = NLA_U64 },
	[NBD_ATTR_TIMEOUT]		= { .type = NLA_U64 },
	[NBD_ATTR_SERVER_FLAGS]		= { .type = NLA_U64 },
	[NBD_ATTR_CLIENT_FLAGS]		= { .type = NLA_U64 },
	[NBD_ATTR_SOCKETS]		= { .type = NLA_NESTED },
	[NBD_ATTR_DEAD_CONN_TIMEOUT]	= { .type = NLA_U64 },
	[NBD_ATTR_DEVICE_LIST]		= { .type = NLA_NESTED },
	[NBD_ATTR_BACKEND_IDENTIFIER]	= { .type = NLA_STRING },
};

static const struct nla_policy nbd_sock_policy[NBD_SOCK_MAX + 1] = {
	[NBD_SOCK_FD]			= { .type = NLA_U32 },
};

static const struct nla_policy nbd_ext_policy[NBD_EXT_MAX + 1] = {
	[NBD_EXT_MAGIC]			= { .type = NLA_U32 },
	[NBD_EXT_FEATURES]		= { .type = NLA_U64 },
	[NBD_EXT_VERSION]		= { .type = NLA_NUL_STRING },
	[NBD_EXT_REPLY_MODE]		= NLA_POLICY_MAX(NLA_U32,
						NBD_EXT_REPLY_STRUCTURED),
	[NBD_EXT_BLOCK_MIN]		= { .type = NLA_U32 },
	[NBD_EXT_BLOCK_PREF]		= { .type = NLA_U32 },
	[NBD_EXT_BLOCK_MAX]		= { .type = NLA_U32 },
};

#define NBD_EXT_FEATURES_SUPPORTED \
	(NBD_EXT_FEAT_STRUCTURED_REPLY | NBD_EXT_FEAT_BLOCK_SIZE | \
	 NBD_EXT_FEAT_KTLS)

static struct genl_family nbd_genl_family;

/**
 * struct nbd_ext_params - what a request's NBD_ATTR_EXT says
 * @structured: the sockets speak structured replies
 * @have_blocks: the server's block size constraints were given
 * @min: minimum block size
 * @pref: preferred block size
 * @max: maximum payload
 */
struct nbd_ext_params {
	bool structured;
	bool have_blocks;
	u32 min, pref, max;
};

/*
 * Read this driver's NBD_ATTR_EXT, if the request has one.  It lies above
 * the family's maxattr, so the generic netlink core leaves it alone: look
 * for it in the message itself.  A nest without this driver's magic is
 * not ours (an upstream attribute of a later kernel with that number) and
 * is ignored like any other unknown attribute.
 */
static int nbd_genl_parse_ext(struct genl_info *info, struct nbd_ext_params *p)
{
	struct nlattr *tb[NBD_EXT_MAX + 1];
	const struct nlattr *ext, *magic, *a;
	int rem, err;

	memset(p, 0, sizeof(*p));
	ext = nla_find(genlmsg_data(info->genlhdr), genlmsg_len(info->genlhdr),
		       NBD_ATTR_EXT);
	if (!ext)
		return 0;
	magic = nla_find(nla_data(ext), nla_len(ext), NBD_EXT_MAGIC);
	if (!magic || nla_len(magic) != sizeof(u32) ||
	    nla_get_u32(magic) != NBD_EXT_MAGIC_VALUE) {
		pr_info_ratelimited("ignoring attribute %d without this driver's magic\n",
				    NBD_ATTR_EXT);
		return 0;
	}
	nla_for_each_attr(a, nla_data(ext), nla_len(ext), rem) {
		if (nla_type(a) < 1 || nla_type(a) > NBD_EXT_MAX) {
			pr_err("unknown attribute %d in NBD_ATTR_EXT\n",
			       nla_type(a));
			NL_SET_ERR_MSG_ATTR(info->extack, a,
					    "nbd: unknown attribute in NBD_ATTR_EXT");
			return -EINVAL;
		}
	}
	err = nla_parse_nested_deprecated(tb, NBD_EXT_MAX, ext, nbd_ext_policy,
					  info->extack);
	if (err) {
		pr_err("bad NBD_ATTR_EXT: %d\n", err);
		return err;
	}
	p->structured = tb[NBD_EXT_REPLY_MODE] &&
			nla_get_u32(tb[NBD_EXT_REPLY_MODE]) ==
			NBD_EXT_REPLY_STRUCTURED;
	if (!tb[NBD_EXT_BLOCK_MIN] && !tb[NBD_EXT_BLOCK_PREF] &&
	    !tb[NBD_EXT_BLOCK_MAX])
		return 0;
	if (!tb[NBD_EXT_BLOCK_MIN] || !tb[NBD_EXT_BLOCK_PREF] ||
	    !tb[NBD_EXT_BLOCK_MAX]) {
		pr_err("NBD_ATTR_EXT: block sizes need all of minimum, preferred and maximum\n");
		NL_SET_ERR_MSG_ATTR(info->extack, ext,
				    "nbd: give the minimum, preferred and maximum block size, or none");
		return -EINVAL;
	}
	p->have_blocks = true;
	p->min = nla_get_u32(tb[NBD_EXT_BLOCK_MIN]);
	p->pref = nla_get_u32(tb[NBD_EXT_BLOCK_PREF]);
	p->max = nla_get_u32(tb[NBD_EXT_BLOCK_MAX]);
	return 0;
}

/* The features this module has, for STATUS replies. */
static int nbd_genl_put_ext_features(struct sk_buff *skb)
{
	struct nlattr *ext = nla_nest_start(skb, NBD_ATTR_EXT);

	if (!ext ||
	    nla_put_u32(skb, NBD_EXT_MAGIC, NBD_EXT_MAGIC_VALUE) ||
	    nla_put_u64_64bit(skb, NBD_EXT_FEATURES,
			      NBD_EXT_FEATURES_SUPPORTED, NBD_EXT_UNSPEC) ||
	    nla_put_string(skb, NBD_EXT_VERSION, NBD_DRIVER_VERSION))
		return -EMSGSIZE;
	nla_nest_end(skb, ext);
	return 0;
}

static size_t nbd_genl_ext_features_size(void)
{
	return nla_total_size(0) + nla_total_size(sizeof(u32)) +
	       nla_total_size_64bit(sizeof(u64)) +
	       nla_total_size(sizeof(NBD_DRIVER_VERSION));
}

/* Checks that need no device: done before anything is touched. */
static int nbd_genl_check_common(struct genl_info *info)
{
	struct nlattr **attrs = info->attrs;

	if (attrs[NBD_ATTR_CLIENT_FLAGS] &&
	    nla_get_u64(attrs[NBD_ATTR_CLIENT_FLAGS]) &
	    ~(u64)NBD_KNOWN_CLIENT_FLAGS) {
		pr_err("unknown client flags %#llx\n",
		       nla_get_u64(attrs[NBD_ATTR_CLIENT_FLAGS]));
		NL_SET_ERR_MSG_ATTR(info->extack, attrs[NBD_ATTR_CLIENT_FLAGS],
				    "nbd: unknown client flags");
		return -EINVAL;
	}
	if (attrs[NBD_ATTR_BACKEND_IDENTIFIER] &&
	    nla_len(attrs[NBD_ATTR_BACKEND_IDENTIFIER]) > NBD_MAX_BACKEND_LEN) {
		pr_err("backend identifier longer than %d bytes\n",
		       NBD_MAX_BACKEND_LEN);
		NL_SET_ERR_MSG_ATTR(info->extack,
				    attrs[NBD_ATTR_BACKEND_IDENTIFIER],
				    "nbd: backend identifier too long");
		return -EINVAL;
	}
	return 0;
}

/* TIMEOUT, DEAD_CONN_TIMEOUT and CLIENT_FLAGS, under config_lock. */
static void nbd_genl_apply_common(struct genl_info *info,
				  struct nbd_config *config)
{
	struct nlattr **attrs = info->attrs;
	struct nbd_device *nbd = config->nbd;
	u64 secs, cflags;

	if (attrs[NBD_ATTR_TIMEOUT])
		nbd_set_timeout(nbd, nla_get_u64(attrs[NBD_ATTR_TIMEOUT]));
	if (attrs[NBD_ATTR_DEAD_CONN_TIMEOUT]) {
		secs = nla_get_u64(attrs[NBD_ATTR_DEAD_CONN_TIMEOUT]);
		secs = min_t(u64, secs, NBD_MAX_TIMEOUT_SECS);
		config->dead_conn_timeout = secs * HZ;
	}
	if (attrs[NBD_ATTR_CLIENT_FLAGS]) {
		cflags = nla_get_u64(attrs[NBD_ATTR_CLIENT_FLAGS]);
		if (cflags & NBD_CFLAG_DESTROY_ON_DISCONNECT)
			set_bit(NBD_DEV_DESTROY_ON_DISCONNECT, &nbd->flags);
		else
			clear_bit(NBD_DEV_DESTROY_ON_DISCONNECT, &nbd->flags);
		if (cflags & NBD_CFLAG_DISCONNECT_ON_CLOSE)
			set_bit(NBD_RT_DISCONNECT_ON_CLOSE, &config->flags);
		else
			clear_bit(NBD_RT_DISCONNECT_ON_CLOSE, &config->flags);
	}
}

/*
 * Adds (or, on a running device, reconnects) each NBD_SOCK_ITEM's fd;
 * stops at the first error.
 */
static int nbd_genl_add_socks(struct genl_info *info,
			      struct nbd_config *config, bool reconnect)
{
	struct nlattr *socks[NBD_SOCK_MAX + 1];
	struct nlattr *attr;
	int rem, err, fd;

	nla_for_each_nested(attr, info->attrs[NBD_ATTR_SOCKETS], rem) {
		if (nla_type(attr) != NBD_SOCK_ITEM) {
			pr_err("NBD_ATTR_SOCKETS holds something other than a socket item\n");
			NL_SET_ERR_MSG_ATTR(info->extack, attr,
					    "nbd: socket list holds an unknown attribute");
			return -EINVAL;
		}
		err = nla_parse_nested_deprecated(socks, NBD_SOCK_MAX, attr,
						  nbd_sock_policy,
						  info->extack);
		if (err) {
			pr_err("bad socket item\n");
			return err;
		}
		if (!socks[NBD_SOCK_FD]) {
			pr_err("socket item without NBD_SOCK_FD\n");
			NL_SET_ERR_MSG_ATTR(info->extack, attr,
					    "nbd: socket item without a fd");
			return -EINVAL;
		}
		fd = nla_get_u32(socks[NBD_SOCK_FD]);
		if (reconnect)
			err = nbd_reconnect_socket(config, fd, info->extack);
		else
			err = nbd_add_socket(config, fd, true, info->extack);
		if (err)
			return err;
	}
	return 0;
}

static int nbd_genl_reply_index(struct genl_info *info, int index)
{
	struct sk_buff *skb;
	void *hdr;

	skb = genlmsg_new(nla_total_size(sizeof(u32)), GFP_KERNEL);
	if (!skb)
		return -ENOMEM;
	hdr = genlmsg_put_reply(skb, info, &nbd_genl_family, 0,
				NBD_CMD_CONNECT);
	if (!hdr || nla_put_u32(skb, NBD_ATTR_INDEX, index)) {
		nlmsg_free(skb);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return genlmsg_reply(skb, info);
}

/* Configure and start @nbd's new session; under config_lock. */
static int nbd_genl_setup(struct genl_info *info, struct nbd_config *config,
			  const struct nbd_ext_params *ext)
{
	struct nlattr **attrs = info->attrs;
	u64 blksize = config->blksize;
	int err;

	set_bit(NBD_RT_BOUND, &config->flags);
	if (attrs[NBD_ATTR_BLOCK_SIZE_BYTES])
		blksize = nla_get_u64(attrs[NBD_ATTR_BLOCK_SIZE_BYTES]);
	if (ext->have_blocks) {
		err = nbd_check_constraints(config->nbd, ext->min, ext->pref,
					    ext->max, blksize, info->extack);
		if (err)
			return err;
		config->min_block = ext->min;
		config->pref_block = ext->pref;
		config->max_payload = ext->max == U32_MAX ? 0 : ext->max;
	}
	config->structured = ext->structured;
	err = nbd_set_size(config, nla_get_u64(attrs[NBD_ATTR_SIZE_BYTES]),
			   blksize);
	if (err) {
		NL_SET_ERR_MSG(info->extack, "nbd: invalid size or block size");
		return err;
	}
	if (attrs[NBD_ATTR_SERVER_FLAGS])
		config->server_flags = nla_get_u64(attrs[NBD_ATTR_SERVER_FLAGS]) &
				       NBD_KNOWN_SERVER_FLAGS;
	nbd_genl_apply_common(info, config);
	if (attrs[NBD_ATTR_BACKEND_IDENTIFIER]) {
		config->backend = nla_strdup(attrs[NBD_ATTR_BACKEND_IDENTIFIER],
					     GFP_KERNEL);
		if (!config->backend)
			return -ENOMEM;
	}
	err = nbd_genl_add_socks(info, config, false);
	if (err)
		return err;
	err = nbd_start_device(config->nbd);
	if (err == -EINVAL && config->num_conns > 1)
		NL_SET_ERR_MSG(info->extack,
			       "nbd: server does not allow multiple connections");
	return err;
}

/*
 * Configuring needs CAP_SYS_ADMIN, as upstream (GENL_ADMIN_PERM would only
 * ask for CAP_NET_ADMIN).
 */
static int nbd_genl_check_perm(struct sk_buff *skb)
{
	if (!netlink_capable(skb, CAP_SYS_ADMIN)) {
		pr_err_ratelimited("configuring nbd needs CAP_SYS_ADMIN\n");
		return -EPERM;
	}
	return 0;
}

static int nbd_genl_connect(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs;
	struct nbd_ext_params ext;
	struct nbd_config *config;
	struct nbd_device *nbd;
	int index = -1, tries = 0;
	int err;

	err = nbd_genl_check_perm(skb);
	err = err ?: nbd_genl_parse_ext(info, &ext);
	if (err)
		return err;

	if (GENL_REQ_ATTR_CHECK(info, NBD_ATTR_SIZE_BYTES) ||
	    GENL_REQ_ATTR_CHECK(info, NBD_ATTR_SOCKETS)) {
		pr_err("CONNECT needs NBD_ATTR_SIZE_BYTES and NBD_ATTR_SOCKETS\n");
		return -EINVAL;
	}
	if (attrs[NBD_ATTR_INDEX]) {
		u32 i = nla_get_u32(attrs[NBD_ATTR_INDEX]);

		if (i != U32_MAX && i > INT_MAX) {
			NL_SET_ERR_MSG_ATTR(info->extack, attrs[NBD_ATTR_INDEX],
					    "nbd: index out of range");
			return -EINVAL;
		}
		index = i == U32_MAX ? -1 : i;
	}
	err = nbd_genl_check_common(info);
	if (err)
		return err;

again:
	nbd = nbd_find_or_create(index);
	if (IS_ERR(nbd)) {
		err = PTR_ERR(nbd);
		if (err == -EINVAL)
			NL_SET_ERR_MSG_ATTR(info->extack, attrs[NBD_ATTR_INDEX],
					    "nbd: index out of range");
		pr_err("cannot find or create device %d: %d\n", index, err);
		return err;
	}

	mutex_lock(&nbd->config_lock);
	if (nbd->config) {
		mutex_unlock(&nbd->config_lock);
		nbd_put(nbd);
		if (index < 0 && ++tries < NBD_CONNECT_TRIES)
			goto again;
		pr_err("nbd%d is already in use\n", index);
		NL_SET_ERR_MSG(info->extack, "nbd: device is in use");
		return -EBUSY;
	}
	config = nbd_config_create(nbd);
	if (IS_ERR(config)) {
		mutex_unlock(&nbd->config_lock);
		nbd_put(nbd);
		return PTR_ERR(config);
	}

	err = nbd_genl_setup(info, config, &ext);
	if (err) {
		clear_bit(NBD_RT_HAS_CONFIG_REF, &config->flags);
		mutex_unlock(&nbd->config_lock);
		nbd_config_put(nbd);
		nbd_put(nbd);
		return err;
	}
	mutex_unlock(&nbd->config_lock);

	err = nbd_genl_reply_index(info, nbd->index);
	nbd_put(nbd);
	return err;
}

static struct nbd_device *nbd_genl_lookup(struct genl_info *info)
{
	struct nbd_device *nbd;
	u32 index;

	if (GENL_REQ_ATTR_CHECK(info, NBD_ATTR_INDEX)) {
		pr_err("request needs NBD_ATTR_INDEX\n");
		return ERR_PTR(-EINVAL);
	}
	index = nla_get_u32(info->attrs[NBD_ATTR_INDEX]);
	nbd = index <= INT_MAX ? nbd_lookup_get(index) : NULL;
	if (!nbd) {
		pr_err("nbd%u does not exist\n", index);
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[NBD_ATTR_INDEX],
				    "nbd: no such device");
		return ERR_PTR(-EINVAL);
	}
	return nbd;
}

static int nbd_genl_disconnect(struct sk_buff *skb, struct genl_info *info)
{
	struct nbd_device *nbd;
	int err;

	err = nbd_genl_check_perm(skb);
	if (err)
		return err;
	nbd = nbd_genl_lookup(info);
	if (IS_ERR(nbd))
		return PTR_ERR(nbd);
	nbd_disconnect_and_put(nbd, true);
	nbd_put(nbd);
	return 0;
}

/*
 * New sockets must speak what the session speaks: the same reply mode,
 * and the same block size constraints (the queue limits were set from
 * them, and a server that now wants others cannot be kept to them).
 */
static int nbd_genl_check_reconnect(struct genl_info *info,
				    struct nbd_config *config,
				    const struct nbd_ext_params *ext)
{
	struct nbd_device *nbd = config->nbd;
	u32 max = ext->max == U32_MAX ? 0 : ext->max;

	if (ext->structured != config->structured) {
		dev_err(nbd_to_dev(nbd),
			"cannot reconnect: the new socket uses %s replies, the device %s replies\n",
			ext->structured ? "structured" : "simple",
			config->structured ? "structured" : "simple");
		NL_SET_ERR_MSG(info->extack,
			       "nbd: the new socket's reply mode differs from the device's");
		return -EINVAL;
	}
	if (ext->have_blocks &&
	    (ext->min != config->min_block || ext->pref != config->pref_block ||
	     max != config->max_payload)) {
		dev_err(nbd_to_dev(nbd),
			"cannot reconnect: the server's block sizes changed to %u/%u/%u (were %u/%u/%u)\n",
			ext->min, ext->pref, ext->max, config->min_block,
			config->pref_block, config->max_payload);
		NL_SET_ERR_MSG(info->extack,
			       "nbd: the server's block size constraints changed");
		return -EINVAL;
	}
	return 0;
}

/*
 * A RECONFIGURE of a device that has a backend identifier must repeat it,
 * as upstream's does, but for one case: a request that only changes the
 * size (NBD_ATTR_INDEX and NBD_ATTR_SIZE_BYTES, nothing else) from the
 * process that started the device or last re-attached it.  Ceph 16's
 * rbd-nbd resizes that way (Ceph tracker 64139), so with upstream's check
 * its devices never follow an image resize.  Another process, or anything
 * more than a size, still needs the identifier.
 */
static bool nbd_genl_owner_resize(struct genl_info *info,
				  const struct nbd_config *config)
{
	int i;

	if (!info->attrs[NBD_ATTR_SIZE_BYTES] ||
	    task_tgid(current) != config->owner)
		return false;
	for (i = 1; i <= NBD_ATTR_MAX; i++)
		if (info->attrs[i] && i != NBD_ATTR_INDEX &&
		    i != NBD_ATTR_SIZE_BYTES)
			return false;
	return !nla_find(genlmsg_data(info->genlhdr),
			 genlmsg_len(info->genlhdr), NBD_ATTR_EXT);
}

static int nbd_genl_reconfigure_locked(struct genl_info *info,
				       struct nbd_device *nbd,
				       const struct nbd_ext_params *ext)
{
	struct nbd_config *config = nbd->config;
	struct nlattr **attrs = info->attrs;
	struct nlattr *backend = attrs[NBD_ATTR_BACKEND_IDENTIFIER];
	int err;

	if (!config || !test_bit(NBD_RT_STARTED, &config->flags)) {
		dev_err(nbd_to_dev(nbd), "not connected, cannot reconfigure\n");
		NL_SET_ERR_MSG(info->extack, "nbd: device is not connected");
		return -EINVAL;
	}
	if (!test_bit(NBD_RT_BOUND, &config->flags)) {
		dev_err(nbd_to_dev(nbd),
			"not configured over netlink, cannot reconfigure\n");
		NL_SET_ERR_MSG(info->extack,
			       "nbd: device was not configured over netlink");
		return -EINVAL;
	}
	/* No reconnect once a disconnect has begun. */
	if (test_bit(NBD_RT_DISCONNECT_REQUESTED, &config->flags) ||
	    !test_bit(NBD_RT_HAS_CONFIG_REF, &config->flags)) {
		dev_err(nbd_to_dev(nbd), "disconnecting, cannot reconfigure\n");
		NL_SET_ERR_MSG(info->extack, "nbd: device is disconnecting");
		return -EBUSY;
	}
	if (config->backend && !backend && nbd_genl_owner_resize(info, config)) {
		dev_info(nbd_to_dev(nbd),
			 "resize by its own process %d without the backend identifier\n",
			 task_tgid_nr(current));
	} else if (config->backend &&
		   (!backend || nla_strcmp(backend, config->backend))) {
		dev_err(nbd_to_dev(nbd),
			"backend identifier missing or different, cannot reconfigure\n");
		NL_SET_ERR_MSG(info->extack,
			       "nbd: backend identifier does not match");
		return -EINVAL;
	}

	nbd_genl_apply_common(info, config);
	if (attrs[NBD_ATTR_SIZE_BYTES]) {
		err = nbd_set_size(config,
				   nla_get_u64(attrs[NBD_ATTR_SIZE_BYTES]), 0);
		if (err) {
			NL_SET_ERR_MSG(info->extack, "nbd: invalid size");
			return err;
		}
	}
	if (attrs[NBD_ATTR_SOCKETS]) {
		err = nbd_genl_check_reconnect(info, config, ext);
		err = err ?: nbd_genl_add_socks(info, config, true);
		if (err)
			return err;
		/* the process that re-attached is the device's now */
		nbd_set_owner(config);
	}
	return 0;
}

static int nbd_genl_reconfigure(struct sk_buff *skb, struct genl_info *info)
{
	struct nbd_ext_params ext;
	struct nbd_device *nbd;
	int err;

	err = nbd_genl_check_perm(skb);
	err = err ?: nbd_genl_check_common(info);
	err = err ?: nbd_genl_parse_ext(info, &ext);
	if (err)
		return err;
	nbd = nbd_genl_lookup(info);
	if (IS_ERR(nbd))
		return PTR_ERR(nbd);
	mutex_lock(&nbd->config_lock);
	err = nbd_genl_reconfigure_locked(info, nbd, &ext);
	mutex_unlock(&nbd->config_lock);
	nbd_put(nbd);
	return err;
}

struct nbd_status_ctx {
	struct sk_buff *skb;
	int err;
};

static void nbd_status_add(struct nbd_device *nbd, struct nbd_status_ctx *ctx)
{
	struct nlattr *item;

	if (ctx->err)
		return;
	item = nla_nest_start(ctx->skb, NBD_DEVICE_ITEM);
	if (!item ||
	    nla_put_u32(ctx->skb, NBD_DEVICE_INDEX, nbd->index) ||
	    nla_put_u8(ctx->skb, NBD_DEVICE_CONNECTED,
		       nbd_device_connected(nbd))) {
		ctx->err = -EMSGSIZE;
		return;
	}
	nla_nest_end(ctx->skb, item);
}

static int nbd_genl_status(struct sk_buff *skb, struct genl_info *info)
{
	struct nbd_status_ctx ctx = { };
	struct nbd_device *nbd = NULL;
	unsigned int count = 0;
	struct nbd_device *it;
	struct nlattr *list;
	int id;
	size_t size;
	void *hdr;

	if (info->attrs[NBD_ATTR_INDEX]) {
		nbd = nbd_genl_lookup(info);
		if (IS_ERR(nbd))
			return PTR_ERR(nbd);
		count = 1;
	} else {
		for (id = 0; (it = nbd_get_next(&id)); id++) {
			count++;
			nbd_put(it);
		}
		count += 16;	/* devices may appear meanwhile */
	}

	size = nla_total_size(0) + count * (nla_total_size(0) +
		nla_total_size(sizeof(u32)) + nla_total_size(sizeof(u8))) +
		nbd_genl_ext_features_size();
	ctx.skb = genlmsg_new(size, GFP_KERNEL);
	if (!ctx.skb) {
		ctx.err = -ENOMEM;
		goto out;
	}
	hdr = genlmsg_put_reply(ctx.skb, info, &nbd_genl_family, 0,
				NBD_CMD_STATUS);
	list = hdr ? nla_nest_start(ctx.skb, NBD_ATTR_DEVICE_LIST) : NULL;
	if (!list) {
		ctx.err = -EMSGSIZE;
		goto out_free;
	}
	if (nbd)
		nbd_status_add(nbd, &ctx);
	for (id = 0; !nbd && (it = nbd_get_next(&id)); id++) {
		nbd_status_add(it, &ctx);
		nbd_put(it);
	}
	if (ctx.err)
		goto out_free;
	nla_nest_end(ctx.skb, list);
	ctx.err = nbd_genl_put_ext_features(ctx.skb);
	if (ctx.err)
		goto out_free;
	genlmsg_end(ctx.skb, hdr);
	ctx.err = genlmsg_reply(ctx.skb, info);
	goto out;

out_free:
	nlmsg_free(ctx.skb);
out:
	if (nbd)
		nbd_put(nbd);
	return ctx.err;
}

static const struct genl_small_ops nbd_genl_ops[] = {
	{
		.cmd		= NBD_CMD_CONNECT,
		.validate	= GENL_DONT_VALIDATE_STRICT |
				  GENL_DONT_VALIDATE_DUMP,
		.doit		= nbd_genl_connect,
	},
	{
		.cmd		= NBD_CMD_DISCONNECT,
		.validate	= GENL_DONT_VALIDATE_STRICT |
				  GENL_DONT_VALIDATE_DUMP,
		.doit		= nbd_genl_disconnect,
	},
	{
		.cmd		= NBD_CMD_RECONFIGURE,
		.validate	= GENL_DONT_VALIDATE_STRICT |
				  GENL_DONT_VALIDATE_DUMP,
		.doit		= nbd_genl_reconfigure,
	},
	{
		.cmd		= NBD_CMD_STATUS,
		.validate	= GENL_DONT_VALIDATE_STRICT |
				  GENL_DONT_VALIDATE_DUMP,
		.doit		= nbd_genl_status,
	},
};

static const struct genl_multicast_group nbd_mcast_grps[] = {
	{ .name = NBD_GENL_MCAST_GROUP_NAME, },
};

/*
 * parallel_ops: no request holds genl_mutex, so a DISCONNECT waiting for
 * a stuck server (within its bound) or a CONNECT being set up does not
 * hold up STATUS or other devices.  Each request serialises on what it
 * touches: nbd_index_mutex for devices, config_lock for a session.
 */
static struct genl_family nbd_genl_family __ro_after_init = {
	.parallel_ops	= true,
	.name		= NBD_GENL_FAMILY_NAME,
	.version	= NBD_GENL_VERSION,
	.module		= THIS_MODULE,
	.small_ops	= nbd_genl_ops,
	.n_small_ops	= ARRAY_SIZE(nbd_genl_ops),
	.resv_start_op	= NBD_CMD_STATUS + 1,
	.maxattr	= NBD_ATTR_MAX,
	.policy		= nbd_attr_policy,
	.mcgrps		= nbd_mcast_grps,
	.n_mcgrps	= ARRAY_SIZE(nbd_mcast_grps),
};

#if IS_ENABLED(CONFIG_KUNIT)
/**
 * nbd_genl_kunit_family() - the family, for tests that send it requests
 *
 * Return: the nbd generic netlink family.
 */
const struct genl_family *nbd_genl_kunit_family(void)
{
	return &nbd_genl_family;
}
EXPORT_SYMBOL_IF_KUNIT(nbd_genl_kunit_family);
#endif

/**
 * nbd_genl_link_dead() - tell listeners that a connection died
 * @index: the device
 */
void nbd_genl_link_dead(int index)
{
	struct sk_buff *skb;
	void *hdr;

	skb = genlmsg_new(nla_total_size(sizeof(u32)), GFP_NOIO);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &nbd_genl_family, 0, NBD_CMD_LINK_DEAD);
	if (!hdr || nla_put_u32(skb, NBD_ATTR_INDEX, index)) {
		nlmsg_free(skb);
		return;
	}
	genlmsg_end(skb, hdr);
	genlmsg_multicast(&nbd_genl_family, skb, 0, 0, GFP_NOIO);
}

/**
 * nbd_genl_init() - register the netlink family
 *
 * Return: 0 or a negative errno.
 */
int __init nbd_genl_init(void)
{
	return genl_register_family(&nbd_genl_family);
}

/**
 * nbd_genl_exit() - unregister the netlink family
 */
void nbd_genl_exit(void)
{
	genl_unregister_family(&nbd_genl_family);
}
